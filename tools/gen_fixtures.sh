#!/usr/bin/env bash
# Regenerate the golden fixtures under fixtures/ from PyTorch 2.15.0 (CPU).
# Usage: bash tools/gen_fixtures.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import torch, numpy, sys; sys.exit(0 if torch.__version__.startswith("2.15.0") else 1)' 2>/dev/null; then
  "$venv/bin/pip" install --upgrade pip
  # CPU only is used, but the plain PyPI wheel is what is reachable.
  "$venv/bin/pip" install "torch==2.15.0" numpy
fi
export CUDA_VISIBLE_DEVICES=""
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec "$venv/bin/python" "$here/gen_fixtures.py" "$@"
