"""The huey instance every process (serve, worker, CLI) shares, chosen by NOREX_QUEUE_URL."""

from __future__ import annotations

import functools
import logging
from urllib.parse import urlparse

from huey import Huey, RedisHuey, SqliteHuey

from norex.db.database import prepare_sqlite_file
from norex.errors import UsageError
from norex.settings import Settings, data_dir, load_settings


def make_huey(settings: Settings) -> Huey:
    """results=False: nothing reads a job's return value, so none is stored (the key/value store then
    holds only the per-customer locks)."""
    url = settings.queue_url or ""
    parsed = urlparse(url)
    if parsed.scheme in ("redis", "rediss", "unix"):
        return RedisHuey("norex", url=url, utc=True, results=False)
    if not url or (parsed.scheme == "sqlite" and parsed.path):
        filename = parsed.path if url else str(data_dir() / "queue.db")
        # Like the database: the file readable by its owner only, in a folder of its own (0700). SQLite gives
        # its -wal and -shm files the database file's mode.
        prepare_sqlite_file(filename)
        return SqliteHuey("norex", filename=filename, utc=True, results=False)
    raise UsageError("NOREX_QUEUE_URL: expected redis://HOST:PORT/DB or sqlite:///PATH (empty: the embedded queue)")


@functools.cache
def huey() -> Huey:
    # huey's own log lines name tasks and their arguments (opaque customer ids only); keep them to warnings.
    logging.getLogger("huey").setLevel(logging.WARNING)
    return make_huey(load_settings())
