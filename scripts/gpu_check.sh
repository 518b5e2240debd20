#!/usr/bin/env bash
# Training throughput of the RVQ-VAE, MoMask's masked and residual transformers and BAMM at the
# paper's sizes on random data: steps/s, samples/s and peak GPU memory per model, plus the
# torch/CUDA versions. Runs on CUDA when available, else on the CPU.
#
# Usage: scripts/gpu_check.sh [--cpu] [--steps N] [--warmup N] [--batch-size N] [--models LIST]
#   --cpu            hide the GPUs (CPU run)
#   --steps N        timed training steps per model (default 300)
#   --warmup N       untimed steps before timing (default 5)
#   --batch-size N   override the upstream batch sizes (256 for the VQ-VAE, 64 otherwise)
#   --models LIST    comma-separated subset of vq,momask,res,bamm
# CPU smoke test: scripts/gpu_check.sh --cpu --steps 3 --warmup 0 --batch-size 4
# Python: $PYTHON, else the repository's .venv, else python3.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
for arg in "$@"; do
    if [[ "$arg" == "--cpu" ]]; then export CUDA_VISIBLE_DEVICES=""; else args+=("$arg"); fi
done
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x .venv/bin/python ]]; then python=.venv/bin/python; else python=python3; fi
fi
PYTHONUNBUFFERED=1 exec "$python" scripts/gpu_check.py "${args[@]}"
