"""Nothing in the repository names this machine's package mirrors: they are read at run time."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import urlparse

from norex.lab import image

REPO = Path(__file__).resolve().parents[2]


def mirror_hosts() -> set[str]:
    text = ""
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        if path.is_file():
            text += path.read_text(errors="replace")
    hosts = {urlparse(u).hostname for u in re.findall(r"https?://[^\s\]]+", text)}
    mirrors = image.host_mirrors()
    hosts |= {urlparse(mirrors.debian).hostname, urlparse(mirrors.security or "").hostname}
    return {h for h in hosts if h and h not in ("localhost", "127.0.0.1")}


def test_no_mirror_host_is_committed():
    hosts = mirror_hosts()
    assert hosts, "expected this machine's apt configuration to name at least one mirror"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    offenders = []
    for name in files:
        path = REPO / name
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        offenders += [f"{name}: {h}" for h in hosts if h in text]
    assert offenders == []
