"""Benchmark: this checkout's no-change converge against another commit's, interleaved on one lab server.

Run as root:  .venv/bin/python tests/bench/converge_ab.py --against REV [--pairs N] [--mitogen]
The machine's speed drifts within an hour here, so two converge benchmarks run apart cannot show a saving of
a second; converging one server alternately with REV's playbooks and collection (a git worktree, handed over as
NOREX_PROJECT_DIR) and with this checkout's can. The first converge uses this checkout; every later one must
change nothing. Prints each converge and the medians; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from norex.converge import Peer, run_site
from norex.project import CHECKOUT
from norex.settings import load_settings
from norex.tunnel import TUNNEL
from tests.conftest import ensure_absent, lab_handle, lab_site_variables, norex, wg_keypair

NAME = "bench-converge-ab"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the commit to compare with (e.g. HEAD~1)")
    parser.add_argument("--pairs", type=int, default=3, help="converges of each, alternating")
    parser.add_argument("--mitogen", action="store_true", help="converge with Mitogen's strategy (norex[fast])")
    args = parser.parse_args()
    if args.pairs < 1:
        parser.error("--pairs: at least 1")
    other = Path(tempfile.mkdtemp(prefix="norex-bench-ab-")) / "checkout"
    subprocess.run(["git", "-C", str(CHECKOUT), "worktree", "add", "--detach", "--quiet", str(other), args.against],
                   check=True)  # fmt: skip
    ensure_absent(NAME)
    try:
        norex("lab", "up", NAME, "--json")
        server = lab_handle(NAME)
        peers = [Peer(wg_keypair()[1], *TUNNEL.device_addresses(n)) for n in (2, 3, 4)]
        variables = lab_site_variables(server, load_settings(), peers)
        first = run_site(server, variables, mitogen=args.mitogen)
        counts = f"{first.ok} ok, {first.skipped} skipped, {first.changed} changed"
        print(f"first converge (this checkout): {first.seconds:.1f} s, {counts}")
        times: dict[str, list[float]] = {args.against: [], "this checkout": []}
        for _ in range(args.pairs):
            for label, folder in ((args.against, other), ("this checkout", CHECKOUT)):
                os.environ["NOREX_PROJECT_DIR"] = str(folder)
                run = run_site(server, variables, mitogen=args.mitogen)
                if run.changed:
                    sys.exit(f"converge_ab: {label} changed {run.changed} task(s) on a converged server")
                times[label].append(run.seconds)
                print(f"  {label}: {run.seconds:.1f} s ({run.ok} ok, {run.skipped} skipped)", flush=True)
        for label, seconds in times.items():
            print(f"{label}: median {statistics.median(seconds):.1f} s of {', '.join(f'{s:.1f}' for s in seconds)}")
    finally:
        os.environ.pop("NOREX_PROJECT_DIR", None)
        ensure_absent(NAME)
        subprocess.run(["git", "-C", str(CHECKOUT), "worktree", "remove", "--force", str(other)], check=False)


if __name__ == "__main__":
    main()
