"""Thin wrappers over the host tools the lab drives (ip, mount, processes)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from norex.errors import NorexError


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


def pid_alive(pid: int | None, marker: str | None = None) -> bool:
    """True if pid runs and (when given) its command line contains marker; guards against pid reuse."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    # An empty command line is a process in the middle of exec (or a kernel thread, never ours).
    return marker is None or marker in cmdline or not cmdline


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def wait_gone(pids: Iterable[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    pending = set(pids)
    while pending and time.monotonic() < deadline:
        pending = {p for p in pending if pid_alive(p)}
        if pending:
            time.sleep(0.1)
    return not pending


def kill(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def ns_inode(pid: int | str, kind: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def pids_in_namespace(kind: str, inode: int) -> list[int]:
    """Every process whose namespace of this kind has this inode (e.g. all of a container's processes)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and ns_inode(entry, kind) == inode:
            found.append(int(entry))
    return found


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
