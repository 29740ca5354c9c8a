"""Benchmark: the resolver role (Unbound + a blocklist) on a lab server with a synthetic 1M-name list.

Run as root:  .venv/bin/python tests/bench/resolver.py [--names 1000000] [--change 0.10] [--qps-pairs 6]
A quick development run: --names 100000 (about 3 minutes). Prints figures; asserts nothing. About 5 minutes at 1M
names.
The lab server is called bench-resolver and is always removed at the end.

Targets (the issue's performance section), all on the 2-core project machine:
- compiling the 1M-name list (`norex blocklist build ... --zone-type always_refuse`): <= 10 s;
- Unbound's RSS and start time with the list: at most local-zone's cost, about 430 MB and 3.2 s measured here
  (RPZ: 1.2 GB and 14 s);
- queries per second with the list loaded, against without: >= 95 % (dnsperf from Debian);
- an update that changes 10 % of the list while dnsperf runs: no query unanswered for more than 200 ms, against
  the 3-4 s of a full `unbound-control reload`.

How it measures:
- The names are random labels under the reserved TLDs `test.` and `example.` (RFC 2606/6761), so none is a real
  domain; names under the lab's own zones (example.test, nic.test, root-servers.test) are never generated. The
  second list drops a random 10 % of the first and adds as many new names.
- The server is made with `norex lab up` and converged with playbooks/site.yml (which ends with the resolver
  role), first with an empty list (the baseline), then with the 1M list (the role applies it live; a prober,
  see below, shows how long Unbound stops answering meanwhile).
- Start time: `systemctl stop unbound`, then `systemctl start unbound`, while a prober on the host, inside the
  server's network namespace, asks `localhost. A` on 127.0.0.1 every 5 ms. The figure is from the exec of the
  unbound process (its start time in /proc) to the first answer; what `systemctl start` took is printed too.
  RSS is VmRSS of unbound's MainPID, read on the host from /proc (after the warm-up, with the cache filled).
- QPS: the host's dnsperf, run in the server's network namespace (nsenter --net) against 127.0.0.1 (loopback is
  allowed by access-control), with the same query file for both cases: lab names that Unbound answers from its
  cache after a warm-up (www, ads, tracker, malware, cdn, a.b.c.deep, hello TXT... under example.test, none of
  them blocked), so the figure measures Unbound itself (its local-zone lookup on every query), not the lab's
  authoritative servers. This machine's speed drifts by tens of percent from one minute to the next (a shared
  host, other lab work), so "without" and "with" are measured in --qps-pairs pairs of back-to-back runs, in
  alternating order (ABBA...), switching by copying an empty or the 1M include file into the role's place and
  restarting Unbound; the figure is the median of the pairs' ratios, every pair is printed. On 2 cores one
  dnsperf thread often cannot saturate Unbound (the share of a core Unbound used is printed per run), so
  Unbound's CPU time per answered query (from /proc) is printed too: its capacity with the list against without,
  whatever limited the run. One extra run with the list shows a mix where half the names are blocked
  (information).
- Update under load: dnsperf sends a steady rate (--load-qps, default 20,000 q/s as in lab-facts.md's reload
  figure; the box does well over 100,000) and a prober sends one query every 10 ms. The second list, compiled on
  the host and copied to the server, is applied with the role's /usr/local/sbin/norex-blocklist-apply. Printed:
  the apply's duration, dnsperf's lost queries and max latency, the prober's max latency and the longest stretch
  with no answer at all (the "unanswered" figure, with every stretch over 200 ms). The same is then measured
  around a full `unbound-control reload` for reference.
- Sanity: after the update a name only in the second list is REFUSED, a name only in the first is not.

dnsperf and Unbound share the 2 cores (Unbound runs num-threads: 1), and other lab work on the machine (tests on
servers t-*) makes the figures noisy: run it on a quiet machine for figures to quote.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import itertools
import json
import os
import random
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from norex.lab.processes import pids_in_namespace
from norex.lab.state import servers_dir
from tests.conftest import NOREX, converge, ensure_absent, norex, on_server, recap, wg_keypair

NAME = "bench-resolver"
OPS = ["198.18.0.1/32", "fd4e:6f72:6578::1/128"]
CONTROL = "unbound-control -s /run/unbound.ctl"
APPLY = "/usr/local/sbin/norex-blocklist-apply"
PROBE_NAME = "www.example.test"
INSTALLED = "/var/lib/unbound/norex-blocklist.conf"  # the role's include file

# Answered from Unbound's cache after the warm-up (the lab zone example.test; none is ever on the lists).
CACHED = [
    "www.example.test A",
    "www.example.test AAAA",
    "ads.example.test A",
    "tracker.example.test A",
    "malware.example.test A",
    "cdn.example.test A",
    "a.b.c.deep.example.test A",
    "hello.example.test TXT",
    "example.test SOA",
    "example.test NS",
    "ns1.example.test A",
    "nothing-here.example.test A",
]

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
TLDS = ("test", "example")  # reserved: no random name can be a real domain
LAB_ZONES = {"example.test", "nic.test", "root-servers.test"}  # the lab's own names: never on a list

# dnsperf settings for the maximum-QPS runs (one sending thread; Unbound has the other core).
DNSPERF_MAX = ["-c", "4", "-T", "1", "-q", "200", "-t", "2"]

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
CLONE_NEWNET = 0x40000000


# ---- the lists -------------------------------------------------------------------------------------


def _random_name(rng: random.Random) -> str:
    while True:
        labels = ["".join(rng.choices(ALPHABET, k=rng.randint(3, 14))) for _ in range(rng.choice((1, 1, 2, 2, 3)))]
        name = ".".join([*labels, rng.choice(TLDS)])
        if ".".join(name.rsplit(".", 2)[-2:]) not in LAB_ZONES:
            return name


def make_lists(names: int, change: float, seed: int) -> tuple[list[str], list[str]]:
    """Two lists of unique names: the second drops a random `change` share of the first and adds as many."""
    rng = random.Random(seed)
    seen: set[str] = set()
    first: list[str] = []
    while len(first) < names:
        name = _random_name(rng)
        if name not in seen:
            seen.add(name)
            first.append(name)
    moved = int(names * change)
    dropped = set(rng.sample(range(names), moved))
    second = [name for i, name in enumerate(first) if i not in dropped]
    while len(second) < names:
        name = _random_name(rng)
        if name not in seen:
            seen.add(name)
            second.append(name)
    return first, second


def write_hosts(path: Path, names: list[str]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write("# synthetic hosts file for the norex resolver benchmark\n")
        for start in range(0, len(names), 10_000):
            fh.write("".join(f"0.0.0.0 {name}\n" for name in names[start : start + 10_000]))


def compile_list(src: Path, out: Path) -> tuple[float, dict]:
    """`norex blocklist build` through the CLI, as the control plane runs it: (seconds, manifest)."""
    started = time.monotonic()
    proc = subprocess.run(
        [NOREX, "blocklist", "build", f"ads={src}", "--zone-type", "always_refuse", "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"norex blocklist build failed: {proc.stderr.strip()}")
    return elapsed, json.loads(proc.stdout)


def compiled_zones(path: Path) -> set[str]:
    zone = re.compile(r'^local-zone:\s*"([^"]+)\."')
    with path.open(encoding="utf-8") as fh:
        return {m.group(1) for line in fh if (m := zone.match(line))}


def blocked_by(name: str, zones: set[str]) -> bool:
    """True if the name or one of its parents is a zone of the list."""
    labels = name.split(".")
    return any(".".join(labels[i:]) in zones for i in range(len(labels)))


# ---- the server's processes and network namespace, seen from the host ------------------------------


def container_pids() -> dict[int, int]:
    """The server's processes: pid inside the server -> pid on the host (from NSpid in /proc)."""
    inode = int((servers_dir() / NAME / "init.pidns").read_text())
    found = {}
    for host_pid in pids_in_namespace("pid", inode):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{host_pid}/status").read_text().splitlines():
                if line.startswith("NSpid:"):
                    found[int(line.split()[-1])] = host_pid
    return found


def unbound_host_pid() -> int:
    inner = int(on_server(NAME, "systemctl show -p MainPID --value unbound.service").strip())
    host = container_pids().get(inner)
    if not inner or host is None:
        raise SystemExit(f"unbound's MainPID ({inner}) not found among the server's processes")
    return host


def rss_mib(host_pid: int) -> float:
    for line in Path(f"/proc/{host_pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no VmRSS for pid {host_pid}")


def started_at(host_pid: int) -> float:
    """When the process was started, in CLOCK_BOOTTIME seconds."""
    fields = Path(f"/proc/{host_pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def netns(path: str) -> Iterator[None]:
    """Switch this thread into a network namespace (sockets made inside stay there), then back."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(own)
        os.close(target)


def udp_socket(ns: str) -> socket.socket:
    with netns(ns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(("127.0.0.1", 53))
    return sock


# ---- DNS by hand ----------------------------------------------------------------------------------


def query_packet(qid: int, name: str, qtype: int = 1) -> bytes:
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".") if label)
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + b"\0" + struct.pack(">HH", qtype, 1)


def lookup(ns: str, name: str, tries: int = 3, timeout: float = 3.0) -> str:
    """The rcode Unbound on 127.0.0.1 gives for `name A`, or "timeout"."""
    sock = udp_socket(ns)
    try:
        for attempt in range(tries):
            qid = random.randrange(65536)
            sock.send(query_packet(qid, name))
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    data = sock.recv(4096)
                except (TimeoutError, ConnectionRefusedError):
                    if attempt == tries - 1:
                        break
                    continue
                if len(data) >= 4 and struct.unpack(">H", data[:2])[0] == qid:
                    return RCODES.get(data[3] & 0xF, str(data[3] & 0xF))
        return "timeout"
    finally:
        sock.close()


class Prober:
    """One query every `interval` seconds on one socket; records when each was sent and answered."""

    def __init__(self, ns: str, name: str = PROBE_NAME, interval: float = 0.01) -> None:
        self.sock = udp_socket(ns)
        self.name = name
        self.interval = interval
        self.sent: dict[int, float] = {}  # seq -> time sent
        self.answered: dict[int, float] = {}  # seq -> time answered
        self.by_id: dict[int, int] = {}  # DNS id -> latest seq with it
        self.first_answer = threading.Event()
        self._stop_sending = threading.Event()
        self._stop_receiving = threading.Event()
        self._threads = [threading.Thread(target=self._send, daemon=True), threading.Thread(target=self._receive)]

    def start(self) -> Prober:
        for thread in self._threads:
            thread.start()
        return self

    def _send(self) -> None:
        seq = 0
        next_at = time.monotonic()
        while not self._stop_sending.is_set():
            qid = seq & 0xFFFF
            self.by_id[qid] = seq
            self.sent[seq] = time.monotonic()
            with contextlib.suppress(OSError):  # ECONNREFUSED while Unbound is down
                self.sock.send(query_packet(qid, self.name))
            seq += 1
            next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _receive(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop_receiving.is_set():
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, OSError):
                continue
            now = time.monotonic()
            if len(data) >= 2:
                seq = self.by_id.get(struct.unpack(">H", data[:2])[0])
                if seq is not None and seq not in self.answered:
                    self.answered[seq] = now
                    self.first_answer.set()

    def stop(self, grace: float = 2.0) -> dict:
        self._stop_sending.set()
        self._threads[0].join()
        time.sleep(grace)
        self._stop_receiving.set()
        self._threads[1].join()
        self.sock.close()
        return self.summary()

    def silent_for(self) -> float:
        """Seconds since the last answer (or since the first query, if none came yet)."""
        last = max(self.answered.values(), default=min(self.sent.values(), default=time.monotonic()))
        return time.monotonic() - last

    def summary(self) -> dict:
        sent = dict(self.sent)
        answers = sorted(self.answered.values())
        latencies = [self.answered[seq] - sent[seq] for seq in self.answered if seq in sent]
        # The longest stretch with no answer at all while queries kept going out every `interval` seconds.
        edges = [min(sent.values()), *answers, max(sent.values())]
        gaps = [b - a for a, b in itertools.pairwise(edges)]
        return {
            "sent": len(sent),
            "answered": len(latencies),
            "lost": len(sent) - len(latencies),
            "max_latency": max(latencies, default=float("nan")),
            "longest_gap": max(gaps),
            "stalls": [gap for gap in gaps if gap > 0.2],  # stretches of more than 200 ms without an answer
        }


# ---- dnsperf in the server's network namespace -------------------------------------------------------


def dnsperf_cmd(ns: str, queries: Path, *args: str) -> list[str]:
    return ["nsenter", f"--net={ns}", "dnsperf", "-s", "127.0.0.1", "-d", str(queries), *args]


def parse_dnsperf(out: str) -> dict:
    def grab(pattern: str, cast=float, default=float("nan")):
        match = re.search(pattern, out)
        return cast(match.group(1)) if match else default

    return {
        "sent": grab(r"Queries sent:\s+(\d+)", int, 0),
        "completed": grab(r"Queries completed:\s+(\d+)", int, 0),
        "lost": grab(r"Queries lost:\s+(\d+)", int, 0),
        "qps": grab(r"Queries per second:\s+([\d.]+)"),
        "avg_latency": grab(r"Average Latency \(s\):\s+([\d.]+)"),
        "max_latency": grab(r"Average Latency \(s\):.*max ([\d.]+)\)"),
        "rcodes": grab(r"Response codes:\s+(.*)", str, "").strip(),
    }


def dnsperf(ns: str, queries: Path, seconds: float, *args: str) -> dict:
    proc = subprocess.run(
        dnsperf_cmd(ns, queries, "-l", str(seconds), *args), capture_output=True, text=True, check=False
    )
    if "Statistics:" not in proc.stdout:
        raise SystemExit(f"dnsperf failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-2000:]}")
    return parse_dnsperf(proc.stdout)


def use_list(which: str) -> None:
    """Restart Unbound with the 1M list ("list") or none ("none") in the role's include file."""
    on_server(NAME, f"cp /root/{which}.conf {INSTALLED} && systemctl restart unbound.service")


def cpu_seconds(host_pid: int) -> float:
    fields = Path(f"/proc/{host_pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def paired_qps(ns: str, queries: Path, seconds: float, pairs: int) -> dict[str, list[dict]]:
    """Max QPS without and with the list, in pairs run back to back (ABBA...), Unbound being on the list now.

    The machine's speed drifts by tens of percent within minutes (other lab work, a shared host), so the two
    cases are measured next to each other, in alternating order, and compared pair by pair. Each result also
    has the share of one core Unbound used (near 100 %: Unbound was the limit, not dnsperf) and Unbound's CPU
    time per answered query (its capacity, whatever the limit was).
    """
    order = [case for i in range(pairs) for case in (("none", "list") if i % 2 == 0 else ("list", "none"))]
    results: dict[str, list[dict]] = {"none": [], "list": []}
    current = "list"
    pid = unbound_host_pid()
    for case in order:
        if case != current:
            use_list(case)
            current = case
            pid = unbound_host_pid()
        dnsperf(ns, queries, 2, "-n", "20", *DNSPERF_MAX)  # warm-up: the cache holds every name of the file
        cpu, wall = cpu_seconds(pid), time.monotonic()
        run = dnsperf(ns, queries, seconds, *DNSPERF_MAX)
        used, wall = cpu_seconds(pid) - cpu, time.monotonic() - wall
        results[case].append(run | {"cpu": used, "core": used / wall, "us": 1e6 * used / max(1, run["completed"])})
    if current != "list":
        use_list("list")
    return results


# ---- the measurements ------------------------------------------------------------------------------


def run_play(extra_vars: dict, workdir: Path) -> tuple[float, dict]:
    started = time.monotonic()
    result = converge(NAME, extra_vars, workdir)  # playbooks/site.yml, which ends with the resolver
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        print(result.stdout[-5000:])
        raise SystemExit("converge failed")
    return elapsed, recap(result.stdout, NAME)


def start_time(ns: str) -> dict:
    """Stop Unbound, start it, and time its first answer (to `localhost. A`, answered without recursion)."""
    on_server(NAME, "systemctl stop unbound.service")
    prober = Prober(ns, name="localhost", interval=0.005).start()
    issued = time.monotonic()
    on_server(NAME, "systemctl start unbound.service")
    returned = time.monotonic() - issued
    if not prober.first_answer.wait(60):
        prober.stop(grace=0)
        raise SystemExit("unbound did not answer within 60 s of its start")
    first = min(prober.answered.values())
    boottime_first = time.clock_gettime(time.CLOCK_BOOTTIME) - (time.monotonic() - first)
    prober.stop(grace=0)
    pid = unbound_host_pid()
    return {
        "exec_to_answer": boottime_first - started_at(pid),
        "issued_to_answer": first - issued,
        "systemctl": returned,
        "pid": pid,
    }


def under_load(ns: str, queries: Path, rate: int, command: str) -> dict:
    """Run `command` on the server while dnsperf sends `rate` q/s and the prober asks every 10 ms."""
    perf = subprocess.Popen(
        dnsperf_cmd(ns, queries, "-l", "600", "-Q", str(rate), "-c", "4", "-q", "500", "-t", "5"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    prober = Prober(ns).start()
    try:
        time.sleep(3)  # steady state first
        started = time.monotonic()
        proc = norex("lab", "ssh", NAME, "--", command, check=False)
        took = time.monotonic() - started
        # Wait until answers flow again (a reload answers "ok" at once and reloads afterwards), then 2 s more.
        deadline = time.monotonic() + 60
        time.sleep(0.5)
        while prober.silent_for() > 0.1 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)
    finally:
        probe = prober.stop()
        perf.send_signal(signal.SIGINT)
        out, _ = perf.communicate(timeout=30)
    if proc.returncode != 0:
        raise SystemExit(f"`{command}` failed ({proc.returncode}): {proc.stderr.strip()}")
    return {"took": took, "output": proc.stdout.strip(), "dnsperf": parse_dnsperf(out), "probe": probe}


def load_lines(label: str, result: dict) -> list[str]:
    perf, probe = result["dnsperf"], result["probe"]
    return [
        f"{label}: command took {result['took']:.2f} s ({result['output'] or 'no output'})",
        f"  dnsperf: {perf['sent']:,} sent, {perf['completed']:,} answered, {perf['lost']:,} lost (no answer in 5 s), "
        f"max latency {perf['max_latency'] * 1000:.0f} ms; rcodes {perf['rcodes']}",
        f"  prober (1 query / 10 ms): {probe['sent']:,} sent, {probe['lost']:,} never answered, "
        f"max latency {probe['max_latency'] * 1000:.0f} ms, longest stretch with no answer "
        f"{probe['longest_gap'] * 1000:.0f} ms; stretches over 200 ms: "
        + (", ".join(f"{gap * 1000:.0f} ms" for gap in probe["stalls"]) or "none"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=1_000_000, help="names on the list (default 1,000,000)")
    parser.add_argument("--change", type=float, default=0.10, help="share of the list the update changes")
    parser.add_argument("--qps-seconds", type=float, default=5, help="length of each max-QPS dnsperf run")
    parser.add_argument("--qps-pairs", type=int, default=6, help="pairs of max-QPS runs (without, with the list)")
    parser.add_argument("--load-qps", type=int, default=20_000, help="dnsperf rate during the update and reload")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (the lab needs it)")

    summary: list[str] = []

    def report(line: str) -> None:
        print(line, flush=True)
        summary.append(line)

    with tempfile.TemporaryDirectory(prefix="norex-resolver-bench-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        first, second = make_lists(args.names, args.change, args.seed)
        write_hosts(work / "list1.txt", first)
        write_hosts(work / "list2.txt", second)
        print(f"generated two lists of {args.names:,} names in {time.monotonic() - started:.1f} s", flush=True)
        del first, second

        took, manifest1 = compile_list(work / "list1.txt", work / "list1")
        report(
            f"compile {args.names:,} names: {took:.2f} s (target <= 10 s); {manifest1['total']:,} zones, "
            f"blocklist.conf {manifest1['output']['bytes'] / 1e6:.1f} MB"
        )
        took2, manifest2 = compile_list(work / "list2.txt", work / "list2")
        print(f"compile the changed list: {took2:.2f} s, {manifest2['total']:,} zones", flush=True)
        list1, list2 = work / "list1" / "blocklist.conf", work / "list2" / "blocklist.conf"
        zones1, zones2 = compiled_zones(list1), compiled_zones(list2)
        only1 = next(n for n in zones1 - zones2 if not blocked_by(n, zones2))
        only2 = next(n for n in zones2 - zones1 if not blocked_by(n, zones1))
        both = next(iter(zones1 & zones2))
        del zones1, zones2

        queries = work / "cached.txt"
        queries.write_text("".join(f"{line}\n" for line in CACHED))
        mixed = work / "mixed.txt"  # about half blocked names (from the first list), half cached lab names
        blocked_sample = [only1, both]
        with list1.open(encoding="utf-8") as fh:
            blocked_sample += [m.group(1) for line in fh if (m := re.match(r'^local-zone:\s*"([^"]+)\."', line))][
                :: max(1, manifest1["total"] // 500)
            ]
        mixed.write_text("".join(f"{n} A\n" for n in blocked_sample) + "".join(f"{line}\n" for line in CACHED) * 40)

        ensure_absent(NAME)
        started = time.monotonic()
        json.loads(norex("lab", "up", NAME, "--json").stdout)
        print(f"lab up: {time.monotonic() - started:.1f} s", flush=True)
        try:
            extra = {
                "norex_ops_cidrs": OPS,
                "wireguard_peers": [
                    {"public_key": wg_keypair()[1], "addresses": ["10.66.0.2/32", "fd9a:3c41:7be2::2/128"]}
                ],
                "resolver_blocklist_file": "",
            }
            took, counts = run_play(extra, work)
            print(f"converge without a list: {took:.1f} s ({counts['ok']} ok, {counts['changed']} changed)", flush=True)
            init = container_pids().get(1)
            if init is None:
                raise SystemExit("the server's init process was not found")
            ns = f"/proc/{init}/ns/net"

            # Baseline: no list.
            bare = start_time(ns)
            dnsperf(ns, queries, 2, *DNSPERF_MAX)
            bare_rss = rss_mib(bare["pid"])

            # The 1M list, installed by the role (applied live), then a restart for the start-time figure.
            prober = Prober(ns).start()
            try:
                took, counts = run_play(extra | {"resolver_blocklist_file": str(list1)}, work)
            finally:
                install = prober.stop()
            report(
                f"converge that installs the list (applied live, no restart): {took:.1f} s "
                f"({counts['changed']} changed); meanwhile the prober's longest stretch with no answer: "
                f"{install['longest_gap']:.2f} s, {install['lost']} of {install['sent']} queries never answered"
            )
            listed_live_rss = rss_mib(unbound_host_pid())
            listed = start_time(ns)
            dnsperf(ns, queries, 2, *DNSPERF_MAX)
            listed_rss = rss_mib(listed["pid"])
            mixed_qps = dnsperf(ns, mixed, args.qps_seconds, *DNSPERF_MAX)
            on_server(NAME, f"cp {INSTALLED} /root/list.conf && printf 'server:\\n' > /root/none.conf")
            qps = paired_qps(ns, queries, args.qps_seconds, args.qps_pairs)

            report(
                f"unbound RSS: {bare_rss:.0f} MiB without a list, {listed_rss:.0f} MiB with {manifest1['total']:,} "
                f"names after a restart ({listed_live_rss:.0f} MiB right after the live apply) (target ~430 MB)"
            )
            for label, figure, target in (("without a list", bare, ""), ("with the list", listed, " (target ~3.2 s)")):
                report(
                    f"unbound start {label}: {figure['exec_to_answer']:.2f} s from exec to first answer "
                    f"(systemctl start over ssh returned after {figure['systemctl']:.2f} s; first answer "
                    f"{figure['issued_to_answer']:.2f} s after it was issued){target}"
                )
            pairs = list(zip(qps["none"], qps["list"], strict=True))
            ratios = [b["qps"] / a["qps"] for a, b in pairs]
            cost = {
                case: 1e6 * sum(r["cpu"] for r in runs) / sum(r["completed"] for r in runs)
                for case, runs in qps.items()
            }
            report(
                f"QPS (cached lab names, dnsperf {' '.join(DNSPERF_MAX)}, {args.qps_pairs} pairs of "
                f"{args.qps_seconds:g} s runs): with the list / without, median of the pairs "
                f"{statistics.median(ratios):.1%} (target >= 95%); mean "
                f"{statistics.mean(r['qps'] for r in qps['list']):,.0f} with, "
                f"{statistics.mean(r['qps'] for r in qps['none']):,.0f} without"
            )
            report(
                "  pairs, without -> with (QPS, share of a core unbound used): "
                + ", ".join(
                    f"{a['qps']:,.0f} ({a['core']:.0%}) -> {b['qps']:,.0f} ({b['core']:.0%}) = {ratio:.0%}"
                    for (a, b), ratio in zip(pairs, ratios, strict=True)
                )
            )
            report(
                f"unbound CPU per answered query: {cost['none']:.2f} us without the list, {cost['list']:.2f} us with "
                f"it: capacity with / without {cost['none'] / cost['list']:.1%} (target >= 95%; median of the pairs "
                f"{statistics.median(a['us'] / b['us'] for a, b in pairs):.1%}); the QPS above is dnsperf's limit "
                "whenever unbound used well under a whole core"
            )
            report(
                f"QPS with the list, half the queries blocked names: {mixed_qps['qps']:,.0f} "
                f"(rcodes {mixed_qps['rcodes']}) (information)"
            )

            # The 10 % update under load, with the role's apply tool.
            rate = args.load_qps
            with list2.open("rb") as fh:
                norex("lab", "ssh", NAME, "--", "cat > /root/list2.conf", stdin=fh)
            update = under_load(ns, queries, rate, f"{APPLY} /root/list2.conf")
            for line in load_lines(
                f"update changing {args.change:.0%} of the list under {rate:,} q/s ({APPLY})", update
            ):
                report(line)
            report("  target: no query unanswered for more than 200 ms")
            after_rss = rss_mib(unbound_host_pid())
            checks = {name: lookup(ns, name) for name in (only2, only1, both)}
            ok = checks[only2] == "REFUSED" and checks[only1] != "REFUSED" and checks[both] == "REFUSED"
            report(
                f"after the update: only in the new list {only2} -> {checks[only2]}, only in the old list {only1} -> "
                f"{checks[only1]}, in both {both} -> {checks[both]}: {'as expected' if ok else 'WRONG'}; "
                f"RSS {after_rss:.0f} MiB"
            )

            # For reference: a full reload under the same load.
            reload = under_load(ns, queries, rate, f"{CONTROL} reload")
            for line in load_lines(f"full `unbound-control reload` under {rate:,} q/s (reference)", reload):
                report(line)
            checks = {name: lookup(ns, name) for name in (only2, only1)}
            print(f"after the reload: {only2} -> {checks[only2]}, {only1} -> {checks[only1]}", flush=True)
        finally:
            ensure_absent(NAME)

    print("\n==== summary (bench-resolver, 2-core lab machine) ====")
    for line in summary:
        print(line)


if __name__ == "__main__":
    main()
