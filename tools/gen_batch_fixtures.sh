#!/usr/bin/env bash
# Regenerate fixtures/batch/*.json (the batch metric-learning losses) from PyTorch 2.15.0 and
# pytorch-metric-learning 2.9.0 (CPU), TF-Addons' formulas ported to torch (no TF install).
# Usage: bash tools/gen_batch_fixtures.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import torch, numpy, pytorch_metric_learning as p, sys; sys.exit(0 if torch.__version__.startswith("2.15.0") and p.__version__ == "2.9.0" else 1)' 2>/dev/null; then
  "$venv/bin/pip" install --upgrade pip
  "$venv/bin/pip" install "torch==2.15.0" "pytorch-metric-learning==2.9.0" numpy
fi
export CUDA_VISIBLE_DEVICES=""
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec "$venv/bin/python" "$here/gen_batch_fixtures.py" "$@"
