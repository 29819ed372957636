#!/usr/bin/env bash
# Install the virtual X server and the X libraries Qt 6 needs, so napari's canvas works headless.
set -euo pipefail
if command -v Xvfb >/dev/null 2>&1; then
    exit 0
fi
packages="xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 libxcb-render-util0 \
libxcb-randr0 libxcb-shape0 libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1 libfontconfig1 libdbus-1-3"
sudo=""
if [ "$(id -u)" != "0" ]; then
    sudo="sudo"
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $packages >/dev/null
