"""The database on SQLite and PostgreSQL: migrations, the store's transactions, erasure that leaves nothing behind."""

from __future__ import annotations

import re
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text

from norex.billing import core, store
from norex.db import Base, Customer, Database, ErasedCustomer, ProcessedEvent, Server, checkpoint
from tests.unit.control_support import BACKENDS, counts, customer_event, database, event, sub_event, subscription

CUS = "cus_DBtestCustomer"
NOW = 1_700_000_000


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with database(request.param, tmp_path) as db:
        yield db


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    with database("sqlite", tmp_path) as db:
        yield db


def apply(db: Database, evt: dict, now: int = NOW) -> store.Outcome:
    with db.write() as session:
        return store.apply_event(session, evt, now)


def customer(db: Database, stripe_id: str = CUS) -> Customer | None:
    with db.read() as session:
        return session.scalars(select(Customer).where(Customer.stripe_customer_id == stripe_id)).one_or_none()


def add_server(db: Database, customer_id: str, state: str = "ready") -> None:
    with db.write() as session:
        session.add(
            Server(
                customer_id=customer_id,
                backend="lab",
                name=customer_id,
                ipv4="10.1.2.3",
                ipv6="fd00::3",
                state=state,
                updated_at=NOW,
            )
        )


# -- schema -------------------------------------------------------------------------------------------------


def test_migration_builds_exactly_the_models(db: Database) -> None:
    assert db.revision() == db.head() == "0010"
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    assert db.upgrade() == "0010"  # idempotent


def test_devices_keep_their_rows_through_migration_0007(tmp_path: Path) -> None:
    """0007 makes the devices table anew (a new primary key): every device comes through with an id of its own."""
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        assert db.upgrade("0006") == "0006"
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO customers (id, stripe_customer_id, desired, erase_requested, created_at) "
                    "VALUES ('c-1', 'cus_1', 'present', false, 1)"
                )
            )
            for n in (2, 3):
                conn.execute(
                    text(
                        'INSERT INTO devices (customer_id, name, "index", public_key, ipv4, ipv6, created_at) '
                        f"VALUES ('c-1', 'phone-{n}', {n}, 'key{n}', '10.66.0.{n}', 'fd::{n}', 1)"
                    )
                )
        assert db.upgrade() == db.head() == "0010"
        with db.engine.connect() as conn:
            rows = conn.execute(text('SELECT id, name, "index" FROM devices ORDER BY "index"')).all()
        assert [(r.name, r.index) for r in rows] == [("phone-2", 2), ("phone-3", 3)]
        assert all(re.fullmatch(r"d-[0-9a-f]{12}", r.id) for r in rows) and rows[0].id != rows[1].id
    finally:
        db.dispose()


def test_sqlite_connections_are_set_up(sqlite_db: Database) -> None:
    with sqlite_db.engine.connect() as conn:
        pragmas = {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("journal_mode", "secure_delete")}
        pragmas |= {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("foreign_keys", "busy_timeout")}
    assert pragmas == {"journal_mode": "wal", "secure_delete": 1, "foreign_keys": 1, "busy_timeout": 10_000}
    path = Path(sqlite_db.engine.url.database or "")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_new_sqlite_file_and_folder_are_private(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'new' / 'norex.db'}")
    try:
        db.upgrade()
        assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "new" / "norex.db").stat().st_mode) == 0o600
    finally:
        db.dispose()


def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(Exception, match=r"(?i)foreign key"), db.write() as session:
        session.add(Server(customer_id="c-0000000000000000", backend="lab", name="x", state="ready", updated_at=1))


# -- applying events ----------------------------------------------------------------------------------------


def test_a_paid_subscription_makes_a_customer_with_an_opaque_id(db: Database) -> None:
    outcome = apply(db, sub_event("created", "sub_1", CUS, "active", NOW))
    row = customer(db)
    assert row is not None and outcome == store.Outcome("applied", row.id)
    assert re.fullmatch(r"c-[0-9a-f]{16}", row.id)
    assert (row.status, row.desired, row.subscription_id, row.last_event_created) == ("active", "present", "sub_1", NOW)


def test_a_redelivered_event_is_applied_once(db: Database) -> None:
    evt = sub_event("created", "sub_1", CUS, "active", NOW)
    outcomes = [apply(db, evt) for _ in range(10)]
    assert [o.result for o in outcomes] == ["applied"] + ["duplicate"] * 9
    assert counts(db)["customers"] == 1 and counts(db)["processed_events"] == 1


def test_email_comes_and_changes_with_customer_events(db: Database) -> None:
    assert apply(db, customer_event("created", CUS, "old@example.org", NOW)) == store.Outcome("applied")
    apply(db, sub_event("created", "sub_1", CUS, "trialing", NOW + 1))
    apply(db, customer_event("updated", CUS, "new@example.org", NOW + 2))
    row = customer(db)
    assert row is not None and (row.email, row.status, row.desired) == ("new@example.org", "trialing", "present")


def test_out_of_order_delete_before_create_keeps_no_server(db: Database) -> None:
    apply(db, sub_event("deleted", "sub_1", CUS, "canceled", NOW + 10))
    assert apply(db, sub_event("created", "sub_1", CUS, "active", NOW)).result == "ignored"
    row = customer(db)
    assert row is not None and row.desired == "absent"


def test_concurrent_first_events_for_one_customer_make_one_row(db: Database) -> None:
    """Two deliveries racing on two connections: ON CONFLICT and row locks, never an error."""
    events = [customer_event("created", CUS, "a@example.org", NOW)] + [
        sub_event("updated", "sub_1", CUS, "active", NOW + i) for i in range(1, 12)
    ]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(events))

    def deliver(evt: dict) -> None:
        try:
            barrier.wait()
            apply(db, evt)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(e,)) for e in events]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    row = customer(db)
    assert counts(db)["customers"] == 1
    assert row is not None
    assert (row.email, row.last_event_created, row.desired) == ("a@example.org", NOW + 11, "present")


def test_reapplying_a_fetched_subscription(db: Database) -> None:
    apply(db, sub_event("created", "sub_1", CUS, "active", NOW))
    row = customer(db)
    assert row is not None
    with db.write() as session:
        outcome = store.apply_subscription(session, row.id, subscription("sub_1", CUS, "unpaid"), NOW + 5)
    assert outcome == store.Outcome("applied", row.id)
    assert customer(db).desired == "absent"  # type: ignore[union-attr]


def test_past_due_grace_runs_out_in_the_sweep(db: Database) -> None:
    apply(db, sub_event("created", "sub_1", CUS, "past_due", NOW))
    row = customer(db)
    assert row is not None and row.desired == "present"
    with db.write() as session:
        assert store.expire_grace(session, NOW + 100, grace_seconds=1000) == []
    with db.write() as session:
        assert store.expire_grace(session, NOW + 1000, grace_seconds=1000) == [row.id]
    assert customer(db).desired == "absent"  # type: ignore[union-attr]


# -- erasure and retention ----------------------------------------------------------------------------------


def test_customer_deleted_without_a_server_erases_at_once(db: Database) -> None:
    apply(db, customer_event("created", CUS, "gone@example.org", NOW))
    apply(db, sub_event("created", "sub_1", CUS, "canceled", NOW + 1))
    row = customer(db)
    assert row is not None
    assert apply(db, customer_event("deleted", CUS, "gone@example.org", NOW + 2)) == store.Outcome("applied", row.id)
    assert customer(db) is None
    assert counts(db)["erased_customers"] == 1
    # A late event for the erased customer cannot bring it back.
    assert apply(db, sub_event("updated", "sub_1", CUS, "active", NOW + 3)).reason == "customer erased"
    assert apply(db, customer_event("updated", CUS, "gone@example.org", NOW + 4)).reason == "customer erased"
    assert customer(db) is None


def test_customer_deleted_with_a_server_clears_the_email_and_waits_for_the_destroy(db: Database) -> None:
    apply(db, customer_event("created", CUS, "gone@example.org", NOW))
    apply(db, sub_event("created", "sub_1", CUS, "active", NOW + 1))
    row = customer(db)
    assert row is not None
    add_server(db, row.id)
    assert apply(db, customer_event("deleted", CUS, None, NOW + 2)) == store.Outcome("applied", row.id)
    pending = customer(db)
    assert pending is not None and (pending.email, pending.desired, pending.erase_requested) == (None, "absent", True)
    with db.write() as session:
        assert store.erase_customer(session, row.id, NOW + 3)
    assert counts(db) == {"customers": 0, "servers": 0, "processed_events": 3, "erased_customers": 1}
    with db.read() as session:
        digests = session.scalars(select(ErasedCustomer.digest)).all()
    assert digests == [core.tombstone_digest(CUS)]


def test_deleted_customer_for_an_unknown_customer_leaves_a_tombstone(db: Database) -> None:
    apply(db, customer_event("deleted", CUS, None, NOW))
    assert counts(db)["erased_customers"] == 1
    assert apply(db, sub_event("created", "sub_1", CUS, "active", NOW + 1)).result == "ignored"


def test_pruning_forgets_old_event_ids_tombstones_and_idle_customers(db: Database) -> None:
    month = store.RETENTION_SECONDS
    apply(db, customer_event("created", "cus_idle", "idle@example.org", NOW), now=NOW)
    apply(db, sub_event("created", "sub_1", CUS, "active", NOW), now=NOW)
    apply(db, customer_event("deleted", "cus_gone", None, NOW), now=NOW)
    apply(db, customer_event("created", "cus_recent", None, NOW), now=NOW + month)
    with db.write() as session:
        assert store.prune(session, NOW + month) == 0
    with db.write() as session:
        assert store.prune(session, NOW + month + 1) == 3 + 1 + 1  # 3 event ids, 1 tombstone, 1 idle customer
    with db.read() as session:
        assert session.scalars(select(ProcessedEvent.received_at)).all() == [NOW + month]
        assert sorted(session.scalars(select(Customer.stripe_customer_id)).all()) == sorted([CUS, "cus_recent"])


EMAIL = "erase.me.please@example.org"


def _file_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())


def test_erased_email_and_ids_are_gone_from_the_sqlite_files(sqlite_db: Database) -> None:
    """grep the database, its WAL and its shared memory file: nothing of the erased customer, anywhere."""
    path = Path(sqlite_db.engine.url.database or "")
    for i in range(300):  # enough rows for several pages, free pages after the delete
        apply(sqlite_db, customer_event("created", f"cus_other{i:04d}", f"other{i:04d}@example.org", NOW))
    apply(sqlite_db, customer_event("created", CUS, EMAIL, NOW))
    apply(sqlite_db, sub_event("created", "sub_erase_me", CUS, "active", NOW))
    apply(sqlite_db, customer_event("updated", CUS, "second." + EMAIL, NOW + 1))
    data = _file_bytes(path)
    assert EMAIL.encode() in data and CUS.encode() in data  # the check below can fail
    assert apply(sqlite_db, customer_event("deleted", CUS, None, NOW + 2)).result == "applied"
    data = _file_bytes(path)
    for secret in (EMAIL, CUS, "sub_erase_me"):
        assert secret.encode() not in data, secret
    assert b"other0150@example.org" in data
    assert Path(f"{path}-wal").stat().st_size == 0


def test_without_secure_delete_the_email_would_linger(tmp_path: Path) -> None:
    """Why secure_delete is on: plain SQLite leaves a deleted row's bytes in the file."""
    path = tmp_path / "plain.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA secure_delete = OFF")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT)")
    conn.executemany("INSERT INTO t (email) VALUES (?)", [(f"x{i}@example.org",) for i in range(300)] + [(EMAIL,)])
    conn.commit()
    conn.execute("DELETE FROM t WHERE email = ?", (EMAIL,))
    conn.commit()
    conn.close()
    assert EMAIL.encode() in path.read_bytes()


def test_checkpoint_reports_success(sqlite_db: Database) -> None:
    apply(sqlite_db, customer_event("created", CUS, EMAIL, NOW))
    assert checkpoint(sqlite_db.engine)
    assert Path(f"{sqlite_db.engine.url.database}-wal").stat().st_size == 0


def test_write_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError), db.write() as session:
        store.apply_event(session, customer_event("created", CUS, EMAIL, NOW), NOW)
        raise RuntimeError("boom")
    assert counts(db) == {"customers": 0, "servers": 0, "processed_events": 0, "erased_customers": 0}


def test_sqlite_writers_in_two_processes_wait_instead_of_failing(sqlite_db: Database, tmp_path: Path) -> None:
    """The worker writes while the webhook does: BEGIN IMMEDIATE plus busy_timeout, no 'database is locked'."""
    other = Database(str(sqlite_db.engine.url))
    try:
        with other.write() as session:
            session.execute(text("SELECT 1"))
            session.add(ProcessedEvent(event_id="evt_hold", received_at=NOW))
            session.flush()
            result: list[str] = []
            t = threading.Thread(target=lambda: result.append(apply(sqlite_db, event("x.y", {}, NOW)).result))
            t.start()
            time.sleep(0.3)
            assert result == []  # waiting for the other writer
        t.join(10)
        assert result == ["ignored"]
    finally:
        other.dispose()
