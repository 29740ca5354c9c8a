"""Thin wrappers over the host tools the lab drives (commands, ip, mounts, detached daemons).

Finding, waiting for and killing processes is norex.lab.processes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from norex.errors import NorexError
from norex.lab.processes import kill, pids_in_namespace, wait_gone


class LabError(NorexError):
    pass


def run(
    cmd: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    netns: str | None = None,
    timeout: float | None = 120,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise LabError naming the command and its last line of stderr."""
    full = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    try:
        proc = subprocess.run(full, input=input, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise LabError(f"{full[0]} is not installed (run `norex lab doctor`)") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{' '.join(full[:4])}` did not finish within {timeout:.0f} s") from exc
    if check and proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise LabError(f"`{' '.join(full[:5])}` failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
    return proc


def ok(cmd: Sequence[str], netns: str | None = None) -> bool:
    return run(cmd, check=False, netns=netns).returncode == 0


def delete_netns(name: str) -> None:
    """Kill whatever still runs in the named network namespace, then remove it (no error when it is gone)."""
    inode = netns_inode(name)
    if inode is not None:
        pids = pids_in_namespace("net", inode)
        kill(pids)
        wait_gone(pids, 5)
        run(["ip", "netns", "del", name], check=False)


def netns_inode(name: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        return None


def is_mounted(path: Path) -> bool:
    target = str(path.resolve())
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            if line.split()[4] == target:
                return True
    except OSError:
        return False
    return False


def unmount(path: Path) -> None:
    """Unmount, falling back to a lazy unmount if something still holds it."""
    while is_mounted(path):
        if run(["umount", str(path)], check=False).returncode != 0:
            run(["umount", "-l", str(path)])


def spawn_detached(
    cmd: Sequence[str], *, stdout: Path | None = None, netns: str | None = None, env: dict[str, str] | None = None
) -> int:
    """Start a long-running process in its own session, detached from the CLI; return its pid."""
    full = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    out = open(stdout, "wb") if stdout else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            full,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env,
        )
    finally:
        if stdout:
            out.close()
    return proc.pid


def link_exists(name: str, netns: str | None = None) -> bool:
    return ok(["ip", "link", "show", "dev", name], netns=netns)
