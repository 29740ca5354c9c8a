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
  openssh-client curl ca-certificates iputils-ping openssl conntrack
  chromium
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

# The dashboard's QR library, from the npm registry, served from our own origin (no CDN). The browser tests
# drive Debian's chromium through Playwright (no browser download).
if ! command -v npm >/dev/null; then
  echo "install.sh: npm is needed for the dashboard's QR library (Node.js with npm)" >&2
  exit 1
fi
npm ci --prefix norex/web/vendor --no-audit --no-fund --silent
.venv/bin/norex lab doctor

# PostgreSQL and Redis for the control plane's tests (production database, scale-out queue), both on
# loopback only (Debian's defaults for PostgreSQL; Redis told so explicitly). Where PID 1 is not systemd
# (CI containers) they are started directly; every step is idempotent.
if [ -d /run/systemd/system ]; then
  systemctl enable --now postgresql.service redis-server.service
else
  if [ -z "$(pg_lsclusters --no-header)" ]; then
    pg_createcluster "$(ls /usr/lib/postgresql | sort -V | tail -n 1)" main
  fi
  pg_lsclusters --no-header | while read -r version cluster _ status _; do
    [ "$status" = online ] || pg_ctlcluster "$version" "$cluster" start
  done
  if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    # No snapshots or append-only file: test queues only; jobs hold opaque ids, still nothing to keep.
    runuser -u redis -- redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --dir /var/lib/redis \
      --save '' --appendonly no --logfile ''
  fi
fi
# The test role and database (tests read NOREX_TEST_POSTGRES_URL; the default matches these).
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 <<'SQL'
SELECT 'CREATE ROLE norex_test LOGIN PASSWORD ''norex_test'''
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'norex_test')\gexec
SELECT 'CREATE DATABASE norex_test OWNER norex_test'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'norex_test')\gexec
SQL
redis-cli -h 127.0.0.1 ping >/dev/null
