# The kube_scale scenario of bench/run (sourced by it; uses its $BENCH, $LT, $WORK,
# alloc_port, emit, say, proc_hwm_kb and proc_rss_kb).
#
#   kube_scale  logtrain's Kubernetes datasource against the test suite's API stand-in
#               (`logtrain-bench kube-api`, which pages lists 500 at a time as kube's
#               watcher asks, like a real API server): 10,000 Deployments with a 2 KB
#               last-applied-configuration each, 3 ReplicaSets per Deployment, 2,000
#               Jobs, and 50 pods on this node. Peak RSS (VmHWM) from start until
#               /readyz answers 200 (every watch listed, routes published), RSS 10 s
#               after, time to ready, and the API load the stand-in served: list
#               pages, watches, single-object GETs. Targets: <= 40 MB peak, <= 24 MB after.
KUBE_SCALE_PEAK_KB=$((40 * 1024))
KUBE_SCALE_AFTER_KB=$((24 * 1024))

kube_scale() { # RUN
  local run=$1
  local dir=$WORK/kube-scale-$run; mkdir -p "$dir/containers"
  alloc_port; local hp=$PORT
  rm -f "$dir/kubeconfig"
  $BENCH kube-api --kubeconfig "$dir/kubeconfig" --deployments 10000 --replicasets 3 --jobs 2000 --pods 50 \
    --last-applied 2048 >"$dir/api.json" 2>"$dir/api.log" &
  local apid=$!
  for _ in $(seq 1 1200); do [ -s "$dir/kubeconfig" ] && break; sleep 0.1; done
  if [ ! -s "$dir/kubeconfig" ]; then
    say "kube_scale run $run: the API stand-in did not start ($(cat "$dir/api.log"))"
    kill "$apid" 2>/dev/null || true; wait "$apid" 2>/dev/null || true
    return 0
  fi
  local t0; t0=$(date +%s.%N)
  (exec env -i PATH="$PATH" RUST_LOG=warn KUBERNETES=true KUBERNETES_DATASOURCE=true KUBECONFIG="$dir/kubeconfig" \
    NODE_NAME=bench-node KUBERNETES_LOG_PATH="$dir/containers" CHECKPOINT_PATH="$dir/checkpoints.json" \
    DRAIN_BUFFER_PATH="$dir/buffers" DRAIN_DENY_NETWORKS= HTTP_PORT="$hp" LISTEN_ADDRESS=127.0.0.1 "$LT" >"$dir/agent.log" 2>&1) &
  AGENT_PID=$!
  local ready=0
  for _ in $(seq 1 1200); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$hp/readyz")" = 200 ]; then ready=1; break; fi
    sleep 0.1
  done
  local t1; t1=$(date +%s.%N)
  local peak; peak=$(proc_hwm_kb "$AGENT_PID" 2>/dev/null || echo -1)
  sleep 10
  local hwm rss
  hwm=$(proc_hwm_kb "$AGENT_PID" 2>/dev/null || echo -1); rss=$(proc_rss_kb "$AGENT_PID" 2>/dev/null || echo -1)
  stop_agent
  kill -TERM "$apid" 2>/dev/null || true; wait "$apid" 2>/dev/null || true
  local api; api=$(cat "$dir/api.json"); [ -n "$api" ] || api=null
  local ready_s; ready_s=$([ $ready = 1 ] && awk "BEGIN{printf \"%.2f\", $t1-$t0}" || echo null)
  emit "{\"scenario\":\"kube_scale\",\"agent\":\"logtrain\",\"run\":$run,\"deployments\":10000,\"replicasets\":30000,\"jobs\":2000,\"pods\":50,\"ready_s\":$ready_s,\"rss_kb\":$peak,\"hwm_after_kb\":$hwm,\"after_rss_kb\":$rss,\"api\":$api}"
  local v1 v2
  v1=$([ "$peak" -gt 0 ] && [ "$peak" -le $KUBE_SCALE_PEAK_KB ] && echo met || echo missed)
  v2=$([ "$rss" -gt 0 ] && [ "$rss" -le $KUBE_SCALE_AFTER_KB ] && echo met || echo missed)
  say "kube_scale run $run: ready in ${ready_s} s, peak $peak kB (<= 40 MB: $v1), after 10 s $rss kB (<= 24 MB: $v2), API: $api"
}
