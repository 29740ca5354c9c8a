#!/usr/bin/env bash
# Run every check and test: lint, unit tests, lab integration tests and molecule (run as root;
# the lab boots real Debian servers under systemd-nspawn). Install first with scripts/install.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

ruff check .
ruff format --check .
ansible-lint -q
pytest "$@"
