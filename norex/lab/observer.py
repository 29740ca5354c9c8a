"""What the lab's authoritative servers were asked: the observer outside a customer's server.

Each lab NSD sends a dnstap frame per query to an fstrm_capture on the host (lab
infrastructure only). This reads them back, so a test can assert what a resolver
revealed to the root and the TLD (QNAME minimisation) without looking inside the server.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass

from norex.errors import NotFound, UsageError
from norex.lab.processes import kill, pid_alive, read_pid
from norex.lab.state import lab_dir, run_dir

# Zone → the folder and daemon tag network.ensure_network gave its NSD.
ZONES = {".": "root", "test.": "test", "example.test.": "example.test"}


@dataclass(frozen=True)
class Query:
    time: str
    source: str
    name: str  # absolute, lower case ("." for the root)
    qtype: str


def zone_of(text: str) -> str:
    """Accept "root", ".", "test", "test.", "example.test" ... and return the absolute zone name."""
    name = text.strip().lower()
    name = "." if name in ("root", ".") else name.rstrip(".") + "."
    if name not in ZONES:
        raise UsageError(f"no lab DNS server for {text!r}: choose one of root, test, example.test")
    return name


def queries(zone: str) -> list[Query]:
    """Every query the lab server for zone was asked since the lab internet started, oldest first."""
    label = ZONES[zone_of(zone)]
    tap = lab_dir() / "dns" / "nsd" / label / "queries.fstrm"
    tag = "nsd-" + ("root" if label == "root" else label.replace(".", "-")) + "-tap"
    pid = read_pid(run_dir() / f"{tag}.pid")
    if not pid_alive(pid, "fstrm_capture") or not tap.exists():
        raise NotFound(f"the lab's DNS observer for {zone_of(zone)} is not running (run: norex lab up NAME)")
    # NSD sends its frames within about a second; SIGHUP makes fstrm_capture flush what it holds.
    kill([pid], signal.SIGHUP)
    time.sleep(0.2)
    proc = subprocess.run(["dnstap-read", str(tap)], capture_output=True, text=True, check=False)
    if proc.returncode != 0 and not proc.stdout:
        return []  # nothing captured yet: dnstap-read refuses a file without frames
    return [q for q in map(_parse, proc.stdout.splitlines()) if q is not None]


def _parse(line: str) -> Query | None:
    # 26-Nov-2026 11:39:41.258 AQ 198.18.1.5:35236 -> 198.18.0.10:53 UDP 52b www.example.test/IN/A
    fields = line.split()
    if len(fields) < 8 or fields[2] != "AQ":
        return None
    name, _, rest = fields[-1].rpartition("/IN/")
    if not name:
        return None
    name = name.lower()
    return Query(
        f"{fields[0]} {fields[1]}", fields[3].rsplit(":", 1)[0], name if name.endswith(".") else name + ".", rest
    )
