#!/usr/bin/env bash
# The main job, end to end: make the busybox base image the way the official
# one is made, build the "middle" app image and the "demo" image on top of it
# with layercake, run both, and list the images. Needs `layercake` on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 scripts/make_busybox_rootfs.py examples/busybox/rootfs.tar
layercake build -t busybox:latest examples/busybox
layercake build -t middle:latest examples/middle
layercake build -t demo:latest examples/demo
layercake run --rm middle:latest
layercake run --rm demo:latest
echo "rebuilding demo: every step comes from the cache"
layercake build -t demo:latest examples/demo
layercake images
