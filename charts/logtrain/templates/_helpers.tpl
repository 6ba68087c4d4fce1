{{/* The chart name, or nameOverride. */}}
{{- define "logtrain.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object names: fullnameOverride, else the release name (if it holds the chart name), else release-chart. */}}
{{- define "logtrain.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "logtrain.labels" -}}
{{ include "logtrain.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: log-router
{{- end }}

{{/* Labels the DaemonSet selects its pods by (never change them on upgrade). */}}
{{- define "logtrain.selectorLabels" -}}
app.kubernetes.io/name: {{ include "logtrain.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount name. */}}
{{- define "logtrain.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "logtrain.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: by digest when one is given, else by tag. */}}
{{- define "logtrain.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The ConfigMap holding logtrain's configuration file, "" for none. */}}
{{- define "logtrain.configMap" -}}
{{- if .Values.existingConfigMap }}
{{- .Values.existingConfigMap }}
{{- else if .Values.config }}
{{- printf "%s-config" (include "logtrain.fullname" .) }}
{{- end }}
{{- end }}

{{/* Where the configuration file is mounted. */}}
{{- define "logtrain.configDir" -}}/etc/logtrain/config{{- end }}

{{/* The labels of the helm test pod, which the NetworkPolicy admits to the HTTP port. */}}
{{- define "logtrain.testLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: helm-test
{{- end }}

{{/* Where the TLS Secret is mounted. */}}
{{- define "logtrain.tlsDir" -}}/etc/logtrain/tls{{- end }}
