#!/usr/bin/env bash
# `make k8s-tools`: what the deployment tests render and check Kubernetes
# manifests with, in a project-local venv (.venv-k8s/, made once, pinned):
#   helm-python-sdk   Helm's own Go SDK (v4) built as a C library with a
#                     Python binding: renders and lints charts exactly as
#                     `helm template` / `helm lint` do, without a helm binary
#                     (which no registry reachable here ships)
#   kubernetes-validate  each rendered object against the Kubernetes API's
#                     JSON schemas (shipped inside the package), strictly:
#                     unknown fields are errors
# Idempotent: a venv with both at these versions is left alone.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-k8s"
HELM_SDK="helm-python-sdk==0.2.2"
VALIDATE="kubernetes-validate==1.37.0"
STAMP="$VENV/.installed"
WANT="$HELM_SDK $VALIDATE"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "$HELM_SDK" "$VALIDATE"
echo "$WANT" > "$STAMP"
echo "k8s-tools: $WANT in $VENV"
