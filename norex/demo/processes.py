"""The daemons of a local control plane, waiting for what they do, and timing the steps."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from norex.errors import NorexError

T = TypeVar("T")


class DemoFailed(NorexError):
    """A step was not observed in time."""


class Clock:
    """Prints each step with the time since the start and since the previous step."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.last = self.started

    def step(self, message: str) -> None:
        now = time.monotonic()
        click.echo(f"[{now - self.started:6.1f} s] (+{now - self.last:5.1f} s) {message}")
        self.last = now


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """The first truthy value probe() returns; DemoFailed naming what was awaited after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"not observed within {timeout:.0f} s: {what}")
        time.sleep(interval)


def norex_cli() -> str:
    return str(Path(sys.executable).with_name("norex"))


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, check=False)


class Processes:
    """Daemons started in their own process groups; all stopped (and their output files removed with the work
    folder) at the end."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work, self.env = work, env
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        out = open(self.work / f"{name}.out", "wb")  # noqa: SIM115 - closed when the process is
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env or self.env, start_new_session=True)
        out.close()
        self.procs[name] = proc
        return proc

    def check(self) -> None:
        """DemoFailed when a daemon has exited, with the last lines it printed."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.work / f"{name}.out").read_text(errors="replace").strip().splitlines()[-3:]
                raise DemoFailed(f"{name} exited with status {proc.returncode}: {' | '.join(tail)}")

    def stop_one(self, name: str) -> None:
        _terminate([self.procs.pop(name)])

    def stop(self) -> None:
        _terminate(list(self.procs.values()))


def _terminate(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each process group, then SIGKILL whatever is still there after 15 s."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
