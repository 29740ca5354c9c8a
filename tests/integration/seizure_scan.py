"""What a seizure does, as a search: every byte a root shell can read on a running server, or every byte of a
powered-off server's disk, searched for needles (raw bytes: each string as UTF-8, UTF-16LE and UTF-16BE, names
also in DNS wire format, addresses also packed). Python's standard library only: on a running server it is
sent to `python3 -I -B -` on stdin (no file written, no needle on a command line) and prints JSON.

Result: {"hits": {place: [needle label, ...]}, "bytes": {kind: bytes read}, "places": {kind: count},
"skipped": [place: why]}. A place is a file path, or the name of what a root shell runs to read live state.
"""

from __future__ import annotations

import ipaddress
import json  # noqa: F401 (the line sent after this file prints the result with it)
import os
import re
import stat
import subprocess

CHUNK = 16 * 1024 * 1024
# A running server: the file system but the kernel's views of itself (/proc, /sys) and device nodes, which
# are read below as a root shell reads them (process environments and command lines, the tables commands print).
SKIP_RUNNING = ("/proc", "/sys", "/dev")
LIVE_COMMANDS = {
    "journal": ["journalctl", "--merge", "--all", "-o", "export", "--no-pager"],
    "ss": ["ss", "-a", "-n", "-p", "-e", "-i"],
    "wg show": ["wg", "show", "all", "dump"],
    "unbound-control dump_cache": ["unbound-control", "dump_cache"],
    "ip neigh": ["ip", "-s", "neigh", "show"],
    "dmesg": ["dmesg"],
    "conntrack": ["conntrack", "-L"],
}


def forms(label: str, text: str, kind: str) -> dict[bytes, str]:
    """The byte strings a value can be stored as, each with its label (the value's label and the form)."""
    found = {text.encode(): label, text.encode("utf-16-le"): f"{label} (UTF-16LE)"}
    found[text.encode("utf-16-be")] = f"{label} (UTF-16BE)"
    if kind == "name":
        wire = b"".join(bytes([len(part)]) + part.encode() for part in text.rstrip(".").split("."))
        found[wire] = f"{label} (DNS wire format)"
    elif kind == "address":
        address = ipaddress.ip_address(text)
        if address.version == 6:
            found[address.packed] = f"{label} (packed)"
            found[address.exploded.encode()] = f"{label} (exploded)"
    elif kind == "key":
        import base64

        raw = base64.b64decode(text)
        found[raw] = f"{label} (raw)"
        found[raw.hex().encode()] = f"{label} (hex)"
    return found


def flow(label: str, one: str, other: str) -> dict[bytes, str]:
    """Two IPv4 addresses side by side, in either order, as an IP header, a conntrack tuple or a capture stores
    the two ends of a flow. A lone packed IPv4 address is 4 bytes: any large binary holds some by chance (apt's
    package cache held the lab web site's), so IPv4 addresses are searched packed only in pairs."""
    a, b = ipaddress.ip_address(one).packed, ipaddress.ip_address(other).packed
    return {a + b: f"{label} (packed pair)", b + a: f"{label} (packed pair)"}


class Search:
    def __init__(self, needles: dict[str, str]):
        """needles: hex of the bytes -> label."""
        self.labels = {bytes.fromhex(h): label for h, label in needles.items()}
        longest_first = sorted(self.labels, key=len, reverse=True)
        self.pattern = re.compile(b"|".join(re.escape(n) for n in longest_first))
        self.overlap = max(map(len, self.labels)) - 1
        self.hits: dict[str, set[str]] = {}
        self.bytes: dict[str, int] = {}
        self.places: dict[str, int] = {}
        self.skipped: list[str] = []

    def data(self, kind: str, place: str, data: bytes) -> None:
        self.bytes[kind] = self.bytes.get(kind, 0) + len(data)
        self.places[kind] = self.places.get(kind, 0) + 1
        for match in self.pattern.finditer(data):
            self.hits.setdefault(place, set()).add(self.labels[match.group(0)])

    def file(self, kind: str, path: str, place: str) -> None:
        try:
            with open(path, "rb") as handle:
                tail = b""
                self.places[kind] = self.places.get(kind, 0) + 1
                while chunk := handle.read(CHUNK):
                    self.bytes[kind] = self.bytes.get(kind, 0) + len(chunk)
                    for match in self.pattern.finditer(tail + chunk):
                        self.hits.setdefault(place, set()).add(self.labels[match.group(0)])
                    tail = (tail + chunk)[-self.overlap :] if self.overlap else b""
        except OSError as error:
            self.skipped.append(f"{place}: {error.strerror}")

    def tree(self, kind: str, root: str, skip: tuple[str, ...] = (), shown_as: str | None = None) -> None:
        """Every regular file under root (symbolic links not followed); with shown_as, a place is named
        shown_as + its path below root (a disk read from outside, as the server sees it)."""
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if os.path.join(folder, d) not in skip]
            for name in files:
                path = os.path.join(folder, name)
                try:
                    mode = os.lstat(path).st_mode
                except OSError:
                    continue
                if stat.S_ISREG(mode):
                    shown = path if shown_as is None else shown_as + "/" + os.path.relpath(path, root)
                    self.file(kind, path, shown)

    def result(self) -> dict:
        return {
            "hits": {place: sorted(labels) for place, labels in sorted(self.hits.items())},
            "bytes": self.bytes,
            "places": self.places,
            "skipped": self.skipped,
        }


def running(needles: dict[str, str]) -> dict:
    """On a running server, as root: the file system (/dev/shm, /run and /tmp included), process environments
    and command lines, and what the commands of LIVE_COMMANDS print."""
    search = Search(needles)
    search.tree("files", "/", skip=SKIP_RUNNING)
    search.tree("files", "/dev/shm")
    me = {os.getpid(), os.getppid()}
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        if pid in me:
            continue
        for part in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{part}", "rb") as handle:
                    data = handle.read()
                with open(f"/proc/{pid}/comm", "rb") as handle:
                    comm = handle.read().decode(errors="replace").strip()
            except OSError:
                continue
            search.data("process environments and command lines", f"/proc/{pid}/{part} ({comm})", data)
    if os.path.exists("/proc/net/nf_conntrack"):
        search.file("live state", "/proc/net/nf_conntrack", "conntrack")
    for place, argv in LIVE_COMMANDS.items():
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=120, check=False)
        except FileNotFoundError:
            search.skipped.append(f"{place}: {argv[0]} not installed")
            continue
        if proc.returncode != 0 and not proc.stdout:
            search.skipped.append(f"{place}: {proc.stderr.decode(errors='replace').strip()[:200]}")
            continue
        search.data("live state", place, proc.stdout)
    return search.result()
