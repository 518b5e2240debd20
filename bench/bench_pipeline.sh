#!/usr/bin/env bash
# Time the whole benchmark from a clean clone (README command 1) and the LCR rerun.
# Usage: bash bench/bench_pipeline.sh [/tmp/hmu-bench]
# Prints wall time and peak memory of `dvc repro`, per-stage wall times, and the time of
# `dvc exp run -S lcr.r=32` afterwards (DESIGN.md budgets: 25 min / 6 GB, and 3 min).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-/tmp/hmu-bench}
export DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
rm -rf "$dest" && git clone -q "$src" "$dest" && cd "$dest"
python3 -m venv .venv && . .venv/bin/activate && pip install -q -r requirements.txt -e .
/usr/bin/time -f "dvc repro: %e s wall, %M KB peak RSS (largest process)" \
    python bench/timed_repro.py dvc repro
/usr/bin/time -f "dvc exp run -S lcr.r=32: %e s wall" \
    python bench/timed_repro.py dvc exp run -S lcr.r=32
