"""Benchmark: converging a fresh lab server with playbooks/site.yml, then converging it again.

Run as root:  .venv/bin/python tests/bench/converge.py
The package cache on the host is warm after the first run of the test suite. Prints figures;
asserts nothing. Targets: first converge <= 120 s, second <= 20 s with zero changed tasks.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conftest import converge, ensure_absent, norex, recap, wg_keypair

NAME = "bench-converge"


def main() -> None:
    ensure_absent(NAME)
    peers = [
        {"public_key": wg_keypair()[1], "addresses": [f"10.66.0.{n}/32", f"fd9a:3c41:7be2::{n:x}/128"]}
        for n in (2, 3, 4)
    ]
    extra = {"norex_ops_cidrs": ["198.18.0.1/32", "fd4e:6f72:6578::1/128"], "wireguard_peers": peers}
    with tempfile.TemporaryDirectory() as work:
        started = time.monotonic()
        json.loads(norex("lab", "up", NAME, "--json").stdout)
        up = time.monotonic() - started
        try:
            runs = []
            for _ in range(2):
                started = time.monotonic()
                result = converge(NAME, extra, Path(work))
                runs.append((time.monotonic() - started, recap(result.stdout, NAME)))
                if result.returncode != 0:
                    print(result.stdout[-3000:])
                    raise SystemExit("converge failed")
        finally:
            ensure_absent(NAME)
    (first, c1), (second, c2) = runs
    print(f"lab up (warm): {up:.1f} s")
    print(f"first converge of a fresh server: {first:.1f} s ({c1['ok']} ok, {c1['changed']} changed)")
    print(f"second converge: {second:.1f} s ({c2['ok']} ok, {c2['changed']} changed)")


if __name__ == "__main__":
    main()
