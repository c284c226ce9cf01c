#!/usr/bin/env bash
# The per-backend table on a CUDA GPU in one command (within 8 minutes):
# GPU batch sizes, mixed precision (AMP for timm, channels-last) and XLA on
# TensorFlow and JAX, PyTorch eager; rows stop starting after 7.5 minutes.
#
#   pip install -e ".[dev,jax-cuda]"      # or the CUDA builds of jax and torch
#   benchmarks/gpu.sh [OUTPUT_DIR] [--dry-run] [--only ROW ...]
#
# Writes OUTPUT_DIR/backends.json and OUTPUT_DIR/backends.md (default: gpu_report).
set -euo pipefail
cd "$(dirname "$0")/.."
output=${1:-gpu_report}
shift || true
if [[ " $* " != *" --dry-run "* ]]; then
  python - <<'PY'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("benchmarks/gpu.sh: no CUDA device visible to torch (use --dry-run to check the plumbing on CPU)")
PY
fi  # --dry-run: the GPU plan (mixed precision, XLA) at tiny sizes on whatever device is here
# XLA and JAX must not grab the whole GPU: each backend runs in a process of its own, one at a time.
export XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true
exec python benchmarks/backend_table.py --device gpu --output "$output" --budget-minutes 7.5 "$@"
