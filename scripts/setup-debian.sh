#!/usr/bin/env bash
# Install what layercake needs on a fresh Debian 12 machine, as root, with no
# questions asked: system packages (iproute2 and nftables for bridge
# networks, slirp4netns for rootless ones), then a virtualenv in .venv with
# layercake installed. `setup-debian.sh test` adds what the test suite runs beside
# layercake: skopeo, umoci, podman and runc (other tools must read what we
# write, and we must read theirs), the distribution registry server, openssl
# for its TLS tests, zstd for zstd layers, and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(python3 python3-venv busybox-static iproute2 nftables slirp4netns)
extra=""
if [ "${1:-}" = "test" ]; then
  packages+=(skopeo umoci podman runc docker-registry openssl zstd util-linux)
  extra="[test]"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${packages[@]}" >/dev/null

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".${extra}"
# Byte-compile now: an environment with PYTHONDONTWRITEBYTECODE would
# otherwise compile every module again at each start of the command.
.venv/bin/python -m compileall -q src >/dev/null
