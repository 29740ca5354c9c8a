"""Benchmark: how long `norex lab up` takes to an SSH-ready server, cold (no base image) and warm.

Run as root:  .venv/bin/python tests/bench/lab_up.py [--runs 5] [--cold]
Cold builds a fresh base image in a temporary cache folder (debootstrap, about a minute), so the
shared cache is left alone. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NOREX = str(Path(sys.executable).with_name("norex"))


def timed(*args: str, env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    subprocess.run([NOREX, *args], check=True, capture_output=True, env=env)
    return time.monotonic() - started


def existing() -> set[str]:
    out = subprocess.run([NOREX, "lab", "list", "--json"], check=True, capture_output=True, text=True).stdout
    return {s["name"] for s in json.loads(out)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="also time a cold start (builds a base image)")
    args = parser.parse_args()
    for name in existing() & {f"bench-{i}" for i in range(args.runs)} | {"bench-cold"}:
        subprocess.run([NOREX, "lab", "down", name], check=False, capture_output=True)

    if args.cold:
        cache = tempfile.mkdtemp(prefix="norex-bench-cache-")
        env = {**os.environ, "NOREX_LAB_CACHE": cache}
        try:
            cold = timed("lab", "up", "bench-cold", env=env)
            timed("lab", "down", "bench-cold", env=env)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        print(f"cold lab up (debootstrap + boot to SSH-ready): {cold:.1f} s")

    timed("lab", "up", "bench-0")  # make sure the lab network and base image are warm
    timed("lab", "down", "bench-0")
    ups, downs = [], []
    for i in range(args.runs):
        ups.append(timed("lab", "up", f"bench-{i}"))
    layers = [du(Path(f"/var/lib/norex/lab/servers/bench-{i}/upper")) for i in range(args.runs)]
    for i in range(args.runs):
        downs.append(timed("lab", "down", f"bench-{i}"))
    print(
        f"warm lab up to SSH-ready ({args.runs} runs): min {min(ups):.2f} s, median {statistics.median(ups):.2f} s, "
        f"max {max(ups):.2f} s"
    )
    print(
        f"lab down ({args.runs} runs): min {min(downs):.2f} s, median {statistics.median(downs):.2f} s, "
        f"max {max(downs):.2f} s"
    )
    print(
        f"base image: {du(next(Path('/var/cache/norex/lab').glob('base-bookworm-*'))):.0f} MB; "
        f"a server's own writable layer after boot: median {statistics.median(layers):.1f} MB"
    )


def du(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=False).stdout.split()
    return float(out[0]) / 1024 if out else 0.0


if __name__ == "__main__":
    main()
