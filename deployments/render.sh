#!/usr/bin/env bash
# Regenerates deployments/kubernetes/ from charts/logtrain: the kubectl-apply manifests
# are the chart's default rendering (see deployments/render.py --plain), never edited
# by hand. Run it after every chart change; tests/it/deploy.rs fails on any difference.
# Needs the .venv/deploy that tests/run installs (Helm's engine, from PyPI), or the
# venv $LOGTRAIN_TEST_DEPLOY_VENV names (as tests/it/deploy.rs does).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${LOGTRAIN_TEST_DEPLOY_VENV:-.venv/deploy}/bin/python
if [ ! -x "$py" ]; then
  echo "render.sh: $py is missing; run tests/run once (its deploy block installs it)" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" deployments/render.py --plain --out "$tmp"
rm -f deployments/kubernetes/*.yaml
cp "$tmp"/*.yaml deployments/kubernetes/
ls deployments/kubernetes/
