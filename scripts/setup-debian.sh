#!/usr/bin/env bash
# Install what layercake needs on a fresh Debian 12 machine, as root, with no
# questions asked: system packages (iproute2 and nftables for bridge
# networks, slirp4netns for rootless ones), then a virtualenv in .venv with
# layercake installed. `setup-debian.sh test` adds what the test suite runs beside
# layercake: skopeo, umoci, podman and runc (other tools must read what we
# write, and we must read theirs), the distribution registry server, openssl
# for its TLS tests, zstd for zstd layers, and pytest. It also creates the
# unprivileged user layercake-ci, with a range of subordinate ids, that the
# rootless tests run as (uidmap gives it newuidmap and newgidmap).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(python3 python3-venv busybox-static iproute2 nftables slirp4netns)
extra=""
if [ "${1:-}" = "test" ]; then
  packages+=(skopeo umoci podman runc docker-registry openssl zstd util-linux uidmap)
  extra="[test]"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${packages[@]}" >/dev/null

if [ "${1:-}" = "test" ]; then
  ci_user=layercake-ci
  if ! id -u "$ci_user" >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$ci_user"
  fi
  # 65536 subordinate ids past every range already given out, as podman's
  # rootless set-up wants them; a second run keeps the first one's range.
  for file in /etc/subuid /etc/subgid; do
    touch "$file"
    if ! grep -q "^$ci_user:" "$file"; then
      start=$(awk -F: 'BEGIN { end = 524288 }
        $2 + $3 > end { end = $2 + $3 } END { print end }' "$file")
      echo "$ci_user:$start:65536" >>"$file"
    fi
  done
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".${extra}"
# Byte-compile now: an environment with PYTHONDONTWRITEBYTECODE would
# otherwise compile every module again at each start of the command.
.venv/bin/python -m compileall -q src >/dev/null
