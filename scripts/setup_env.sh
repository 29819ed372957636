#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv with the given extras.
# torch is pinned to the CPU build first: a bare "torch" requirement would pull a CUDA build of
# several GB. Usage: scripts/setup_env.sh EXTRAS   (for example "qt" or "testing")
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-qt}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/python -m pip install -q "torch==2.13.0"
fi
.venv/bin/python -m pip install -q -e ".[${extras}]"
