#!/usr/bin/env bash
# Install everything the tests need (Xvfb, the package with its test extras) and run the tests: ruff, the
# import contracts of pyproject.toml (lint-imports), then pytest. Extra arguments go to pytest. Fails when
# no test is collected (pytest exits with 5).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_xvfb.sh
scripts/setup_env.sh testing
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-xcb}"
.venv/bin/ruff check src tests benchmarks
.venv/bin/lint-imports
.venv/bin/python -m pytest "$@"
