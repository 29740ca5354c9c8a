"""Shared helpers: the norex CLI as a user runs it, and the lab servers the integration tests share."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

NOREX = str(Path(sys.executable).with_name("norex"))
REPO = Path(__file__).resolve().parent.parent


def norex(*args: str, check: bool = True, timeout: float = 600, **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([NOREX, *args], capture_output=True, text=True, timeout=timeout, check=False, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"norex {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def on_server(name: str, command: str, check: bool = True) -> str:
    """Run a shell command on a lab server over SSH, as an operator would."""
    return norex("lab", "ssh", name, "--", command, check=check).stdout


def lab_names() -> set[str]:
    return {s["name"] for s in json.loads(norex("lab", "list", "--json").stdout)}


def ensure_absent(*names: str) -> None:
    """Remove servers left by an earlier, interrupted run (CI runs right after development work)."""
    existing = lab_names()
    for name in names:
        if name in existing:
            norex("lab", "down", name)


@pytest.fixture(scope="session")
def two_servers() -> Iterator[dict[str, dict]]:
    """Two lab servers, made once for the whole run and always removed afterwards."""
    names = ("t-alpha", "t-beta")
    ensure_absent(*names)
    servers = {}
    try:
        for name in names:
            servers[name] = json.loads(norex("lab", "up", name, "--json").stdout)
        yield servers
    finally:
        ensure_absent(*names)
