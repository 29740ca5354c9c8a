"""The scale-out queue: huey on the real Redis server (started by scripts/install.sh), two worker processes.

Customers here want no server and have asked to be erased, so each job is quick and touches no lab
server; what is checked is the queue: two workers consume jobs a third process enqueued, every customer
is handled, and a customer whose lock is held elsewhere waits until it is released.
"""

from __future__ import annotations

import os
import time

import pytest
import redis
from sqlalchemy import func, select

from norex.db.models import Customer
from norex.demo.processes import Processes
from norex.jobs.queue import make_huey
from norex.jobs.tasks import RedisLock
from norex.settings import load_settings
from tests.conftest import NOREX, norex
from tests.unit.control_support import database

REDIS_URL = os.environ.get("NOREX_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def queue_env(tmp_path):
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()  # a database of its own (15): nothing else lives there
    with database("sqlite", tmp_path) as db:
        env = {
            **os.environ,
            "NOREX_DATABASE_URL": db.url,
            "NOREX_QUEUE_URL": REDIS_URL,
            "NOREX_BACKEND": "lab",
            "XDG_DATA_HOME": str(tmp_path),
        }
        yield db, env, client
    client.flushdb()


def add_customers(db, count: int) -> list[str]:
    now = int(time.time())
    ids = [f"c-{n:016x}" for n in range(1, count + 1)]
    with db.write() as session:
        for cid in ids:
            session.add(
                Customer(
                    id=cid,
                    stripe_customer_id=f"cus_q{cid}",
                    status="canceled",
                    status_since=now,
                    desired="absent",
                    erase_requested=True,
                    created_at=now,
                )
            )
    return ids


def remaining(db) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(Customer))


def test_two_workers_share_the_redis_queue_and_respect_a_held_lock(queue_env, tmp_path):
    db, env, _ = queue_env
    ids = add_customers(db, 30)
    held = ids[0]
    # Another worker machine holds the first customer's lock (with its expiry).
    huey = make_huey(load_settings(database_url=db.url, queue_url=REDIS_URL))
    lock = RedisLock(huey.storage.conn, f"customer-{held}", 120)
    lock.__enter__()
    procs = Processes(tmp_path, env)
    try:
        out = norex("reconcile", "--json", env=env).stdout  # enqueues from a third process
        assert '"drifted": 30' in out and '"orphans": 0' in out
        procs.start("worker-a", [NOREX, "worker", "--workers", "1"])
        procs.start("worker-b", [NOREX, "worker", "--workers", "1"])
        deadline = time.monotonic() + 60
        while remaining(db) > 1:
            procs.check()
            assert time.monotonic() < deadline, f"{remaining(db)} customers left"
            time.sleep(0.2)
        time.sleep(2)
        with db.read() as session:
            assert [c.id for c in session.scalars(select(Customer))] == [held]  # waiting for its lock
        lock.__exit__(None, None, None)
        deadline = time.monotonic() + 30
        while remaining(db):
            procs.check()
            assert time.monotonic() < deadline, "the customer whose lock was released was never handled"
            time.sleep(0.2)
    finally:
        procs.stop()
    outputs = [(tmp_path / f"worker-{w}.out").read_text() for w in "ab"]
    assert all("worker with 1 thread(s)" in out for out in outputs)
