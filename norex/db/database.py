"""Engines, sessions and migrations for SQLite (embedded default) and PostgreSQL (production).

SQLite is set up on every connection: WAL so readers never block the webhook, secure_delete so an erased
email does not linger in free pages, foreign keys, and a busy timeout for the worker writing alongside.
Write transactions on SQLite begin IMMEDIATE (the write lock is taken up front, so a busy database waits
instead of failing halfway) and are serialised within the process by a lock, which queues threads fairly
instead of leaving them to SQLite's sleeping busy handler.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from norex.errors import NorexError

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 10_000
# Any 64-bit number unique to us: held while migrating so `serve` and `worker` starting together do not race.
PG_MIGRATION_LOCK = 0x6E6F7265782D6462


def prepare_sqlite_file(database: str) -> None:
    """Create the file readable by its owner only (it holds emails), and its folder if missing; a file made
    with a wider mode by an older version is narrowed."""
    path = Path(database).expanduser()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)


def make_engine(url: str) -> Engine:
    """An engine with parameters hidden from error messages (they would carry emails and Stripe ids)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, hide_parameters=True, pool_pre_ping=True, pool_size=10, max_overflow=10)

    prepare_sqlite_file(parsed.database or "")
    engine = create_engine(url, hide_parameters=True, pool_size=10, max_overflow=10)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (below), pysqlite does not guess
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode = WAL",
            "synchronous = FULL",  # an acknowledged webhook must survive a power cut
            "secure_delete = ON",
            "foreign_keys = ON",
            f"busy_timeout = {BUSY_TIMEOUT_MS}",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        mode = conn.get_execution_options().get("norex_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def checkpoint(engine: Engine, attempts: int = 3) -> bool:
    """Move the WAL into the database file and truncate it, so deleted data is gone from the -wal file too.

    Returns False if readers kept it busy for every attempt (the data then leaves at the next checkpoint).
    """
    if engine.dialect.name != "sqlite":
        return True
    for _ in range(attempts):
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            busy, _log, _done = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            cursor.close()
        finally:
            raw.close()
        if busy == 0:
            return True
        time.sleep(0.05)
    return False


def scrub_after_commit(session: Session) -> None:
    """Ask for a WAL checkpoint once this session commits: personal data was changed or deleted."""
    if session.info.get("norex_scrub"):
        return
    session.info["norex_scrub"] = True

    def _after_commit(sess: Session) -> None:
        sess.info.pop("norex_scrub", None)
        if not checkpoint(sess.get_bind()):  # type: ignore[arg-type]
            log.warning("SQLite WAL checkpoint kept busy by readers: erased data leaves the WAL at the next one")

    event.listen(session, "after_commit", _after_commit, once=True)


class Database:
    """One per process: `read()` for queries, `write()` for one committed transaction."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._lock: contextlib.AbstractContextManager = threading.Lock() if self.is_sqlite else contextlib.nullcontext()
        self._reads = sessionmaker(self.engine, expire_on_commit=False)
        self._writes = sessionmaker(self.engine.execution_options(norex_begin="IMMEDIATE"), expire_on_commit=False)

    @property
    def display_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self._reads() as session:
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction committed on success and rolled back on any exception."""
        with self._lock, self._writes.begin() as session:
            yield session

    def upgrade(self, revision: str = "head") -> str | None:
        """Bring the schema to `revision` with the migrations shipped in the package; return the new revision."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        engine = self.engine.execution_options(norex_begin="IMMEDIATE")
        with self._lock, engine.begin() as conn:
            if not self.is_sqlite:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
        return self.revision()

    def revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head(self) -> str | None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        return ScriptDirectory.from_config(config).get_current_head()

    def dispose(self) -> None:
        self.engine.dispose()


def connect(url: str, *, upgrade: bool = True) -> Database:
    """Open the database for a command, migrated to the newest schema (or checked to be), failing in one line."""
    db = Database(url)
    try:
        if upgrade:
            db.upgrade()
        elif db.revision() != db.head():
            raise NorexError(f"the database at {db.display_url} has an older schema; run `norex db upgrade`")
    except DBAPIError as exc:
        db.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        raise NorexError(f"cannot use the database at {db.display_url}: {reason}") from None
    except OSError as exc:
        db.dispose()
        raise NorexError(f"cannot use the database at {db.display_url}: {exc.strerror or exc}") from None
    return db
