"""Benchmark: converging a fresh lab server with playbooks/site.yml, then converging it again.

Run as root:  .venv/bin/python tests/bench/converge.py [--runs N] [--mitogen] [--image prepared]
The converge is the control plane's own (norex.converge: the variables it hands to site.yml, ansible-runner
with nothing kept on disk). The package cache on the host is warm after the first run of the test suite.
Prints figures, asserts nothing: the wall time and counts of each converge, and where the time went (per
role, and the ten slowest tasks, from ansible-runner's events, held in memory only).
Targets (issue 13): first converge <= 25 s, second <= 10 s with zero changed tasks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from norex.converge import Converged, Peer, run_site
from norex.settings import load_settings
from norex.tunnel import TUNNEL
from tests.conftest import ensure_absent, lab_handle, lab_site_variables, norex, wg_keypair

NAME = "bench-converge"


def report(label: str, run: Converged, slowest: int = 10) -> None:
    print(f"{label}: {run.seconds:.1f} s ({run.ok} ok, {run.skipped} skipped, {run.changed} changed)")
    roles = ", ".join(f"{role or 'play'} {secs:.1f} s" for role, secs in run.per_role().items())
    print(f"  per role: {roles}")
    for t in run.timings[:slowest]:
        print(f"  {t.seconds:6.2f} s  {t.role or 'play'}: {t.task}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="converges of the same server (the first on a fresh one)")
    parser.add_argument("--tasks", type=int, default=10, help="how many of the slowest tasks to print per converge")
    parser.add_argument("--mitogen", action="store_true", help="converge with Mitogen's strategy (norex[fast])")
    parser.add_argument(
        "--no-security-updates",
        action="store_true",
        help="leave the security updates pending in the lab image (what a converge costs from an up-to-date image)",
    )
    parser.add_argument(
        "--image",
        choices=("stock", "prepared"),
        default="stock",
        help="the lab image the server is made from (prepared: production's prepared snapshot; built on first use,"
        " before the clock starts)",
    )
    args = parser.parse_args()
    ensure_absent(NAME)
    if args.image == "prepared":
        import subprocess

        from norex.lab.prepared import ensure_prepared_image, is_built

        was_built, started = is_built(), time.monotonic()
        folder = ensure_prepared_image()
        size = subprocess.run(["du", "-sm", str(folder)], capture_output=True, text=True, check=True).stdout.split()[0]
        built = "already built" if was_built else f"built in {time.monotonic() - started:.1f} s"
        print(f"prepared image: {built}, {size} MB")
    peers = [Peer(wg_keypair()[1], *TUNNEL.device_addresses(n)) for n in (2, 3, 4)]
    started = time.monotonic()
    json.loads(norex("lab", "up", NAME, "--json", "--image", args.image).stdout)
    print(f"lab up (warm): {time.monotonic() - started:.1f} s")
    try:
        server = lab_handle(NAME)
        variables = lab_site_variables(server, load_settings(), peers)
        if args.no_security_updates:
            variables["base_security_updates_at_converge"] = False
        for number in range(args.runs):
            label = "first converge of a fresh server" if number == 0 else f"converge {number + 1}"
            report(label, run_site(server, variables, mitogen=args.mitogen), args.tasks)
    finally:
        ensure_absent(NAME)


if __name__ == "__main__":
    main()
