#!/usr/bin/env bash
# Install everything norex and its tests need on a fresh Debian 12 machine (run as root):
# Debian packages for the lab, a Python virtualenv in .venv with norex and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (the lab needs root, and so does apt-get)" >&2
  exit 1
fi

packages=(
  python3 python3-venv python3-dev gcc git
  systemd-container debootstrap iproute2 nftables procps kmod
  wireguard-tools wireguard-go
  nsd ldnsutils bind9-dnsutils apt-cacher-ng fstrm-bin dnsperf
  postgresql redis-server
  openssh-client curl ca-certificates iputils-ping
)

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${packages[@]}"

# The lab runs its own NSD and apt-cacher-ng inside its namespaces; the packages' system-wide
# services (listening on every interface of the host) are not wanted.
if [ -d /run/systemd/system ]; then
  systemctl disable --now nsd.service apt-cacher-ng.service
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'
.venv/bin/norex lab doctor
