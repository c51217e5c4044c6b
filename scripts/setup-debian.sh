#!/usr/bin/env bash
# Install what layercake needs on a fresh Debian 12 machine, as root, with no
# questions asked: system packages, then a virtualenv in .venv with layercake
# installed. `setup-debian.sh test` adds the test suite's tools (skopeo and
# umoci to check that other tools read our images, and pytest).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(python3 python3-venv busybox-static)
extra=""
if [ "${1:-}" = "test" ]; then
  packages+=(skopeo umoci)
  extra="[test]"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${packages[@]}" >/dev/null

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".${extra}"
