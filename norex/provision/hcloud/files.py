"""Files the backend keeps per stack: written atomically, readable by their owner only."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from pulumi import automation as auto


def write_private(path: Path, data: bytes) -> None:
    """Write atomically, readable by its owner only (a stack's settings hold its encryption salt)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def stack_salt(workspace: auto.LocalWorkspace, stack_name: str) -> str | None:
    try:
        return workspace.stack_settings(stack_name).encryption_salt
    except FileNotFoundError:
        return None
