"""Benchmark: compile a synthetic 1M-name hosts file, in-process and through the CLI. Prints figures, asserts nothing.

    .venv/bin/python tests/bench/blocklist_compile.py [--names 1000000] [--junk 0.01]

Target: <= 10 s for 1M names on the 2-core project machine. The names are random, so none is a real domain.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from norex.blocklist.build import build

NOREX = str(Path(sys.executable).with_name("norex"))
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
TLDS = ("com", "net", "org", "io", "example", "test", "info", "xn--p1ai")
JUNK = (
    "||ads.{w}.com^$third-party",
    "{w}.com##.banner",
    "@@||{w}.org^",
    "/ad[0-9]+\\.{w}/",
    "0.0.0.0 {w}",
    "0.0.0.0 {w}..com",
    "0.0.0.0 -{w}.com",
    "0.0.0.0 {w}.c_m",
    "192.168.1.1 {w}.lan",
    "0.0.0.0 {w}.\u2603.com",
    "0.0.0.0 " + "a" * 64 + ".{w}.com",
    "127.0.0.1 localhost",
    "10.0.0.1",
)


def _label(rng: random.Random) -> str:
    return "".join(rng.choices(ALPHABET, k=rng.randint(3, 14)))


def generate(path: Path, names: int, junk: float, seed: int = 1) -> int:
    """Write a hosts file in chunks so the generator does not inflate the in-process RSS figure."""
    rng = random.Random(seed)
    written = 0
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write("# synthetic hosts file for the norex blocklist benchmark\n")
        chunk: list[str] = []
        for i in range(names):
            depth = rng.choice((1, 1, 2, 2, 3))
            name = ".".join([*(_label(rng) for _ in range(depth)), rng.choice(TLDS)])
            chunk.append(f"0.0.0.0 {name}")
            if rng.random() < junk:
                chunk.append(rng.choice(JUNK).format(w=_label(rng)))
            if len(chunk) >= 10_000 or i == names - 1:
                fh.write("\n".join(chunk) + "\n")
                written += len(chunk)
                chunk = []
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=1_000_000)
    parser.add_argument("--junk", type=float, default=0.01)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="norex-blocklist-bench-") as tmp:
        src = Path(tmp) / "hosts.txt"
        t0 = time.perf_counter()
        lines = generate(src, args.names, args.junk)
        print(f"generated {lines:,} lines ({src.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s")
        base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        t0 = time.perf_counter()
        result = build([f"ads={src}"], Path(tmp) / "out-inproc")
        elapsed = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        size = result["output"]["bytes"]
        print(
            f"in-process: {elapsed:.2f} s, peak RSS {peak / 1024:.0f} MiB (before build {base_rss / 1024:.0f} MiB), "
            f"blocklist.conf {size / 1e6:.1f} MB, {result['total']:,} zones, {result['rejected_total']:,} rejected, "
            f"{result['dropped']['covered-by-parent']:,} covered, {result['dropped']['duplicate']:,} duplicates"
        )

        t0 = time.perf_counter()
        proc = subprocess.run(
            [NOREX, "blocklist", "build", f"ads={src}", "--out", str(Path(tmp) / "out-cli"), "--json"],
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - t0
        child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if proc.returncode != 0:
            sys.exit(f"CLI failed ({proc.returncode}): {proc.stderr.strip()}")
        cli_result = json.loads(proc.stdout)
        same = cli_result["output"]["sha256"] == result["output"]["sha256"]
        print(
            f"CLI:        {elapsed:.2f} s, peak RSS {child_peak / 1024:.0f} MiB, "
            f"blocklist.conf {cli_result['output']['bytes'] / 1e6:.1f} MB, identical to in-process: {same}"
        )


if __name__ == "__main__":
    main()
