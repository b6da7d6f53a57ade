#!/usr/bin/env bash
# One prepared GPU run: every GPU measurement of brandstudio in under 8 minutes, appended with the
# machine and date to bench/RESULTS.md (see bench/gpu.py for what is measured and how).
#
#   bash bench/gpu.sh [--dry-run] [--no-append] [--only a14b,vae]
#
# Without CUDA it refuses, unless --dry-run: the same code paths on the CPU at toy sizes, the
# report on stdout only (CI runs this: tests/test_bench_gpu.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# random weights are built from configs: nothing may be downloaded
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "${PYTHON:-python}" bench/gpu.py "$@"
