#!/usr/bin/env bash
# Install napari with the plugin into .venv and start it with the sample nuclei image and the
# plugin's widgets. Extra arguments are image files to open instead of the sample.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh qt
exec .venv/bin/python -m napari_unet._launch "$@"
