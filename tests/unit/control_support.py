"""Helpers for the control plane's tests: a migrated database on each backend, Stripe-style signatures, events.

PostgreSQL is not optional: CI runs scripts/install.sh, which starts it and creates the test role, so an
unreachable server fails the PostgreSQL tests instead of skipping them.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from norex.db import Database
from norex.db.models import Customer, ErasedCustomer, ProcessedEvent, Server

POSTGRES_URL = os.environ.get(
    "NOREX_TEST_POSTGRES_URL", "postgresql+psycopg://norex_test:norex_test@127.0.0.1:5432/norex_test"
)
BACKENDS = ("sqlite", "postgresql")
SECRET = "whsec_test_" + "a1b2c3d4" * 4
_ids = itertools.count(1)


@contextmanager
def database(backend: str, tmp_path: Path) -> Iterator[Database]:
    """A database migrated with the shipped Alembic migrations: a temp SQLite file, or a fresh PostgreSQL schema."""
    if backend == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'norex.db'}")
        try:
            db.upgrade()
            yield db
        finally:
            db.dispose()
        return
    schema = "t_" + secrets.token_hex(6)
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        db = Database(url.render_as_string(hide_password=False))
        try:
            db.upgrade()
            yield db
        finally:
            db.dispose()
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    finally:
        admin.dispose()


def counts(db: Database) -> dict[str, int]:
    with db.read() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (Customer, Server, ProcessedEvent, ErasedCustomer)
        }


def sign(payload: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    """A Stripe-Signature header made the way Stripe makes it: HMAC-SHA256 of "t.payload" with the secret."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={v1(payload, secret, t)}"


def v1(payload: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()


def event(kind: str, obj: dict[str, Any], created: int, event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{next(_ids):024d}",
        "object": "event",
        "type": kind,
        "created": created,
        "livemode": False,
        "data": {"object": obj},
    }


def subscription(sub_id: str, customer: str, status: str, period_end: int | None = 2_000_000_000) -> dict[str, Any]:
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "current_period_end": period_end,
    }


def sub_event(kind: str, sub_id: str, customer: str, status: str, created: int, **kw: Any) -> dict[str, Any]:
    return event(f"customer.subscription.{kind}", subscription(sub_id, customer, status, **kw), created)


def customer_event(kind: str, customer: str, email: str | None, created: int) -> dict[str, Any]:
    return event(f"customer.{kind}", {"id": customer, "object": "customer", "email": email}, created)


def body(evt: dict[str, Any]) -> bytes:
    return json.dumps(evt).encode()
