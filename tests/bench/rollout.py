"""Benchmark: rolling a new version out to a fleet of lab servers with `norex rollout` and `norex worker`.

Run as root:  .venv/bin/python tests/bench/rollout.py [--servers 20] [--mitogen]
Makes N customers who pay, lets workers create and converge their servers, then rolls a new blocklist out
twice: with one worker process (2 threads) on the embedded queue, and with two worker processes on the Redis
queue (the scale-out engine; Redis from scripts/install.sh). Prints the wall time, servers per minute and
per controller CPU-second (the workers' processes and everything they ran: ansible-playbook, ssh), and the
memory one lab server takes. Asserts nothing.
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

from norex.db.database import connect
from norex.db.models import Customer, Server
from norex.demo.processes import Processes, wait_for
from norex.lab.processes import pids_in_namespace
from norex.lab.state import servers_dir
from norex.provision.interface import control_plane_id
from norex.provision.lab import LabProvisioner
from tests.conftest import NOREX, build_blocklist, norex

REDIS = "redis://127.0.0.1:6379/14"


def cpu_seconds(pid: int) -> float:
    """A process's CPU time and that of its children it waited for (ansible-playbook, ssh)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks


def server_memory_mib(name: str) -> float:
    """Resident memory of every process of one lab server (its PID namespace)."""
    inode = int((servers_dir() / name / "init.pidns").read_text())
    total = 0
    for pid in pids_in_namespace("pid", inode):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def available_mib() -> float:
    """The host's MemAvailable: what the machine can still give without swapping."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rollout(env: dict, procs: Processes, workers: list[tuple[str, int]], batch: int) -> tuple[float, float, dict]:
    for name, threads in workers:
        procs.start(name, [NOREX, "worker", "--workers", str(threads)], env=env)
    time.sleep(2)
    before = sum(cpu_seconds(procs.procs[name].pid) for name, _ in workers)
    started = time.monotonic()
    out = norex("rollout", "--json", "--canary", "1", "--batch", str(batch), env=env, timeout=7200).stdout
    seconds = time.monotonic() - started
    cpu = sum(cpu_seconds(procs.procs[name].pid) for name, _ in workers) - before
    for name, _ in workers:
        procs.stop_one(name)
    return seconds, cpu, json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=20)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--mitogen", action="store_true", help="converge with Mitogen (norex[fast])")
    parser.add_argument(
        "--queues",
        default="embedded,redis",
        help="which roll-outs to run, comma-separated: embedded (1 worker x 2 threads), redis (2 workers x 1 thread)",
    )
    parser.add_argument("--threads", type=int, default=2, help="threads of the worker that creates the servers")
    args = parser.parse_args()
    wanted = set(args.queues.split(","))
    if not wanted <= {"embedded", "redis"}:
        parser.error(f"--queues: unknown {sorted(wanted - {'embedded', 'redis'})}")
    work = Path(tempfile.mkdtemp(prefix="norex-bench-rollout-"))
    url = f"sqlite:///{work / 'norex.db'}"
    base = {
        **os.environ,
        "NOREX_DATABASE_URL": url,
        "NOREX_QUEUE_URL": f"sqlite:///{work / 'queue.db'}",
        "NOREX_BACKEND": "lab",
        "NOREX_BLOCKLIST_FILE": str(build_blocklist(work, "v1", ["ads.example.test"])),
        "NOREX_ANSIBLE_MITOGEN": "1" if args.mitogen else "",
        "XDG_DATA_HOME": str(work),
    }
    ids = [f"c-{n:012x}" for n in range(0xB0001, 0xB0001 + args.servers)]
    db = connect(url)
    provisioner = LabProvisioner(control_plane_id(url))
    now = int(time.time())
    with db.write() as session:
        for cid in ids:
            session.add(
                Customer(id=cid, stripe_customer_id="cus_" + cid, status="active", desired="present", created_at=now)
            )
    procs = Processes(work, base)
    before = available_mib()
    try:
        started = time.monotonic()
        procs.start("maker", [NOREX, "worker", "--workers", str(args.threads)], env=base)

        def ready() -> int | None:
            procs.check()
            with db.read() as session:
                done = session.query(Server).filter(Server.state == "ready").count()
            return done if done == len(ids) else None

        wait_for(f"{len(ids)} converged servers", ready, 7200, interval=5)
        made = time.monotonic() - started
        procs.stop_one("maker")
        memory = [server_memory_mib(cid) for cid in ids]
        after = available_mib()
        print(f"{len(ids)} servers created and converged by one worker ({args.threads} threads) in {made:.0f} s")
        print(f"memory per lab server: median {sorted(memory)[len(memory) // 2]:.0f} MiB, max {max(memory):.0f} MiB")
        print(
            f"host memory available: {before / 1024:.1f} GiB before, {after / 1024:.1f} GiB with the servers = "
            f"{(before - after) / len(ids):.0f} MiB per server (page cache of the shared image counted once)"
        )

        runs = (
            ("embedded", "embedded queue, 1 worker x 2 threads", base["NOREX_QUEUE_URL"], [("w1", 2)], "v2"),
            ("redis", "Redis queue, 2 workers x 1 thread", REDIS, [("r1", 1), ("r2", 1)], "v3"),
        )
        for _, label, queue, workers, version in (run for run in runs if run[0] in wanted):
            env = {
                **base,
                "NOREX_QUEUE_URL": queue,
                "NOREX_BLOCKLIST_FILE": str(build_blocklist(work, version, [f"{version}.example.test"])),
            }
            seconds, cpu, result = rollout(env, procs, workers, args.batch)
            done = result["done"]
            print(
                f"rollout, {label}: {done} done, {len(result['failed'])} failed in {seconds:.0f} s = "
                f"{done / seconds * 60:.1f} servers/min; controller CPU {cpu:.0f} s = "
                f"{done / cpu:.2f} servers per CPU-second"
            )
    finally:
        procs.stop()
        db.dispose()
        for cid in ids:
            provisioner.destroy(cid)


if __name__ == "__main__":
    main()
