"""Pulumi's failures as the control plane's errors: which are retried, which need ops, in one line each."""

from __future__ import annotations

import os
import re
import socket
from datetime import datetime

from norex.errors import NorexError

# No `up` or `destroy` of one server takes this long: a lock this old belongs to a run that died.
STALE_LOCK_SECONDS = 3600
# "  file:///.../c-1.json: created by ops@host (pid 4242) at 2026-01-02T03:04:05Z" (Pulumi's DIY backend lock)
LOCK_LINE = re.compile(r"created by \S*?@(?P<host>\S+) \(pid (?P<pid>\d+)\) at (?P<at>\S+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_EMAIL = re.compile(r"\S+@\S+\.\S+")


class RetryLater(NorexError):
    """Another Pulumi run holds the stack now; the worker retries the job with backoff."""


class StackLocked(NorexError):
    """A lock left by a Pulumi run that is no longer running: ops clear it by hand, norex never does."""

    transient = False


class PulumiFailed(NorexError):
    """A Pulumi operation failed; the message carries its error line, never its whole output."""


def summary(text: str) -> str:
    """The line of Pulumi's output that says what went wrong, without colours, addresses or emails."""
    lines = [_ANSI.sub("", line).strip() for line in text.splitlines()]
    errors = [line for line in lines if line.startswith("error:") or " error: " in f" {line}"]
    specific = [line for line in errors if not re.fullmatch(r"error: (update|destroy|refresh) failed", line)]
    chosen = (specific or errors or ["no error line in Pulumi's output"])[0]
    chosen = re.sub(r"\b\d{1,3}(\.\d{1,3}){3}\b|\b[0-9a-f]{1,4}(:[0-9a-f]{0,4}){2,7}\b", "<address>", chosen)
    chosen = _EMAIL.sub("<redacted>", chosen)
    return chosen[:240]


def lock_is_stale(host: str, pid: int, taken_at: str, now: float) -> bool:
    """A lock is stale when its process is gone (this host), or when it is older than any real run."""
    if host == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # it runs, as another user
        return False
    try:
        since = datetime.fromisoformat(taken_at).timestamp()
    except ValueError:
        return False
    return now - since > STALE_LOCK_SECONDS
