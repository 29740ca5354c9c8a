"""Benchmark: `norex audit` on converged lab servers: one alone, then --servers of them at once from this host.

Run as root:  .venv/bin/python tests/bench/audit.py [--servers 10]
Makes --servers lab servers and converges them with site.yml in one run (the agent included), then:
- audits the first alone three times: wall time, and the CPU seconds it cost the server (user + system time
  of every process in the server's PID namespace, the exited ones its processes waited for included);
- audits all of them in one `norex audit` run: wall time.
Prints figures, asserts nothing. Target (issue 15): one server <= 15 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from norex.agent.ca import AgentCA
from norex.lab.processes import pids_in_namespace
from norex.lab.state import servers_dir
from tests.conftest import converge, ensure_absent, norex

TICKS = os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(name: str) -> float:
    """User + system time of every process of the lab server (its PID namespace), with the time of the exited
    children each one waited for."""
    inode = int((servers_dir() / name / "init.pidns").read_text())
    total = 0
    for pid in pids_in_namespace("pid", inode):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile: its parent counts it
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=10)
    args = parser.parse_args()
    names = [f"bench-audit-{n}" for n in range(1, args.servers + 1)]
    ensure_absent(*names)
    work = Path(tempfile.mkdtemp(prefix="norex-bench-audit-"))
    ca = AgentCA(work / "agent-ca").ensure()
    variables = {
        "norex_control_plane_cidrs": ["198.18.0.1/32", "fd4e:6f72:6578::1/128"],
        "agent_ca_dir": str(ca.folder),
        "agent_port": 8443,
        "firewall_agent_port": 8443,
    }
    try:
        for name in names:
            norex("lab", "up", name, "--json")
        started = time.monotonic()
        result = converge(",".join(names), variables, work)
        if result.returncode != 0:
            raise SystemExit(f"converge failed:\n{result.stdout[-3000:]}")
        print(f"{len(names)} servers converged in one run: {time.monotonic() - started:.1f} s")
        for run in range(3):
            before = server_cpu_seconds(names[0])
            started = time.monotonic()
            proc = norex("audit", names[0], "--json", check=False)
            seconds = time.monotonic() - started
            cpu = server_cpu_seconds(names[0]) - before
            (report,) = json.loads(proc.stdout)
            print(
                f"audit of one server, run {run + 1}: {seconds:.1f} s wall, {cpu:.2f} CPU-s on the server, "
                f"{len(report['checks'])} checks, {report['summary']}"
            )
        started = time.monotonic()
        proc = norex("audit", *names, "--json", check=False)
        reports = json.loads(proc.stdout)
        print(f"audit of {len(names)} servers at once: {time.monotonic() - started:.1f} s wall, {len(reports)} reports")
    finally:
        ensure_absent(*names)


if __name__ == "__main__":
    main()
