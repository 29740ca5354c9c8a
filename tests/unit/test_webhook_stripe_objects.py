"""The webhook against Stripe objects as Stripe sends them, on SQLite and PostgreSQL: every value Stripe allows
fits, an event that can never be stored is answered 2xx and counted (never silently retried for three days),
pause and resume move the server, and an event of the other Stripe mode changes nothing."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from norex.billing import store
from norex.db import Customer, Database
from norex.errors import UsageError
from norex.settings import Settings, load_settings
from norex.web import create_app
from tests.unit.control_support import BACKENDS, SECRET, body, counts, customer_event, database, sign, sub_event
from tests.unit.test_blocklist_cli import run  # the CLI entry point, in-process

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

URL = "/stripe/webhook"
# What Stripe documents: customer emails up to 512 characters, object ids up to 255.
# (Stripe does not hold emails to DNS's 253-character names: a 64-character local part and 7 labels of 63.)
LONGEST_EMAIL = "a" * 64 + "@" + ".".join(["b" * 63] * 7)
LONGEST_ID = 255


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with database(request.param, tmp_path) as db:
        yield db


def client_for(db: Database, **settings: Any) -> TestClient:
    app = create_app(Settings(database_url=db.url, stripe_webhook_secret=SECRET, **settings), lambda _cid: None, db)
    return TestClient(app, raise_server_exceptions=True)


def post(client: TestClient, evt: dict[str, Any]) -> Any:
    payload = body(evt)
    return client.post(URL, content=payload, headers={"stripe-signature": sign(payload)})


def row(db: Database, stripe_customer_id: str) -> Customer | None:
    with db.read() as session:
        return session.scalars(select(Customer).where(Customer.stripe_customer_id == stripe_customer_id)).first()


def now() -> int:
    return int(time.time())


def stripe_id(prefix: str, length: int = LONGEST_ID) -> str:
    return prefix + "x" * (length - len(prefix))


def test_the_longest_email_is_a_well_formed_address_of_512_characters() -> None:
    local, domain = LONGEST_EMAIL.split("@")
    assert len(LONGEST_EMAIL) == 512 and len(local) == 64
    assert all(1 <= len(label) <= 63 for label in domain.split("."))


def test_the_longest_value_of_every_stored_field_fits(db: Database) -> None:
    """customer.created, checkout.session.completed, customer.updated and a subscription (current API shape:
    the period end on the items), every id and the email at the most Stripe allows."""
    cus, sub = stripe_id("cus_"), stripe_id("sub_")
    t = now()
    checkout = {
        "id": stripe_id("cs_test_"),
        "object": "checkout.session",
        "mode": "subscription",
        "customer": cus,
        "subscription": sub,
        "customer_details": {"email": LONGEST_EMAIL},
    }
    subscription = {
        "id": sub,
        "object": "subscription",
        "customer": cus,
        "status": "active",
        "items": {"object": "list", "data": [{"id": stripe_id("si_"), "current_period_end": 2_000_000_000}]},
    }
    events = [
        {**customer_event("created", cus, LONGEST_EMAIL, t), "id": stripe_id("evt_")},
        {**customer_event("updated", cus, LONGEST_EMAIL[::-1][:512], t + 1), "id": stripe_id("evt_", 254)},
        {
            "id": stripe_id("evt_", 253),
            "object": "event",
            "type": "checkout.session.completed",
            "created": t + 2,
            "livemode": False,
            "data": {"object": checkout},
        },
        {
            "id": stripe_id("evt_", 252),
            "object": "event",
            "type": "customer.subscription.created",
            "created": t + 3,
            "livemode": False,
            "data": {"object": subscription},
        },
    ]
    with client_for(db) as client:
        for evt in events:
            r = post(client, evt)
            assert (r.status_code, r.json()["result"]) == (200, "applied"), evt["type"]
    stored = row(db, cus)
    assert stored is not None
    assert (stored.email, stored.subscription_id, stored.desired) == (LONGEST_EMAIL, sub, "present")
    assert stored.period_end == 2_000_000_000
    assert counts(db)["processed_events"] == 4


@pytest.mark.parametrize(
    ("what", "evt"),
    [
        ("an email over Stripe's limit", customer_event("created", "cus_Long", "a" * 600 + "@example.org", 1)),
        ("an id over Stripe's limit", customer_event("created", stripe_id("cus_", 256), "x@example.org", 1)),
        ("a time no database holds", customer_event("created", "cus_Far", "x@example.org", 2**70)),
    ],
)
def test_an_event_that_can_never_be_stored_is_answered_2xx_and_counted(
    db: Database, caplog: pytest.LogCaptureFixture, what: str, evt: dict[str, Any]
) -> None:
    """Retrying cannot help: answered 200 (Stripe stops), nothing of it written, counted by type only."""
    evt = {**evt, "created": evt["created"] if evt["created"] > 1 else now()}
    with client_for(db) as client, caplog.at_level(logging.WARNING):
        for attempt in (1, 2):
            r = post(client, evt)
            assert (r.status_code, r.json()) == (200, {"received": True, "result": "failed"}), what
            with db.read() as session:
                assert store.failed_events(session)["customer.created"]["count"] == attempt
    assert counts(db) == {"customers": 0, "servers": 0, "processed_events": 0, "erased_customers": 0}
    lines = [r.getMessage() for r in caplog.records if "can never be stored" in r.getMessage()]
    assert len(lines) == 2 and all(
        line.startswith("norex: webhook: a customer.created event can never be stored (") for line in lines
    )
    payload = body(evt).decode()
    for record in caplog.records:  # the log names the type and the error class, never a value of the event
        assert evt["data"]["object"]["id"] not in record.getMessage() and "example.org" not in record.getMessage()
    assert "example.org" in payload  # the check above could have found it


def test_a_database_that_is_away_is_answered_503_so_stripe_retries(tmp_path: Path) -> None:
    away = Database("postgresql+psycopg://norex_test:norex_test@127.0.0.1:9/norex_test?connect_timeout=2")
    try:
        with client_for(away) as client:
            r = post(client, customer_event("created", "cus_Away", "x@example.org", now()))
        assert (r.status_code, r.text) == (503, "temporarily unavailable")
    finally:
        away.dispose()


def test_failed_events_are_shown_to_ops(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'norex.db'}"
    db = Database(url)
    db.upgrade()
    with db.write() as session:
        store.record_failed_event(session, "customer.updated", "DataError", 1_800_000_000)
        store.record_failed_event(session, "customer.updated", "DataError", 1_800_000_001)
        store.record_failed_event(session, "<script>", "ValueError", 1_800_000_002)  # not a type Stripe sends
    db.dispose()
    for name in list(os.environ):
        if name.startswith("NOREX_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NOREX_DATABASE_URL", url)
    code, out, err = run(monkeypatch, capsys, "customers", "list", "--json")
    assert code == 0
    assert json.loads(out) == {
        "customers": [],
        "failed_events": {
            "customer.updated": {"count": 2, "error": "DataError", "last_failed_at": 1_800_000_001},
            "other": {"count": 1, "error": "ValueError", "last_failed_at": 1_800_000_002},
        },
    }
    code, out, err = run(monkeypatch, capsys, "customers", "list")
    assert "3 webhook event(s) could never be stored (see `norex doctor`)" in err
    code, out, err = run(monkeypatch, capsys, "doctor", "--json")
    check = next(c for c in json.loads(out)["checks"] if c["name"] == "webhook events")
    assert not check["ok"] and check["detail"].startswith("3 could never be stored: customer.updated x2 (DataError)")
    assert code == 5


def test_failure_counts_are_pruned_after_30_days(db: Database) -> None:
    with db.write() as session:
        store.record_failed_event(session, "customer.updated", "DataError", 1_000)
        store.record_failed_event(session, "invoice.paid", "DataError", 1_000 + store.RETENTION_SECONDS)
    with db.write() as session:
        store.prune(session, 1_001 + store.RETENTION_SECONDS)
    with db.read() as session:
        assert list(store.failed_events(session)) == ["invoice.paid"]


# -- pause and resume ------------------------------------------------------------------------------------------


def test_paused_takes_the_server_away_and_resumed_brings_it_back(db: Database) -> None:
    t = now()
    with client_for(db) as client:
        assert post(client, sub_event("created", "sub_P", "cus_P", "active", t)).status_code == 200
        assert row(db, "cus_P").desired == "present"
        assert post(client, sub_event("paused", "sub_P", "cus_P", "paused", t + 10)).json()["result"] == "applied"
        assert (row(db, "cus_P").status, row(db, "cus_P").desired) == ("paused", "absent")
        # A resume in the same second as the pause still comes after it.
        assert post(client, sub_event("resumed", "sub_P", "cus_P", "active", t + 10)).json()["result"] == "applied"
        assert (row(db, "cus_P").status, row(db, "cus_P").desired) == ("active", "present")
        # An older pause delivered late changes nothing.
        assert post(client, sub_event("paused", "sub_P", "cus_P", "paused", t + 5)).json()["result"] == "ignored"
        assert row(db, "cus_P").desired == "present"
        # A pause whose object carries no status is a pause all the same.
        late = sub_event("paused", "sub_P", "cus_P", "paused", t + 20)
        del late["data"]["object"]["status"]
        assert post(client, late).json()["result"] == "applied"
        assert row(db, "cus_P").desired == "absent"


def test_a_cancelled_subscription_is_not_resumed(db: Database) -> None:
    t = now()
    with client_for(db) as client:
        post(client, sub_event("created", "sub_C", "cus_C", "active", t))
        post(client, sub_event("deleted", "sub_C", "cus_C", "canceled", t + 1))
        assert post(client, sub_event("resumed", "sub_C", "cus_C", "active", t + 2)).json()["result"] == "ignored"
        assert row(db, "cus_C").desired == "absent"


# -- test mode and live mode -----------------------------------------------------------------------------------


def test_an_event_of_the_other_mode_is_answered_2xx_and_changes_nothing(db: Database) -> None:
    live = {**sub_event("created", "sub_L", "cus_L", "active", now()), "livemode": True}
    with client_for(db) as client:
        r = post(client, live)
        assert (r.status_code, r.json()) == (200, {"received": True, "result": "ignored"})
    assert counts(db) == {"customers": 0, "servers": 0, "processed_events": 0, "erased_customers": 0}
    with client_for(db, stripe_mode="live") as client:
        assert post(client, {**live, "livemode": False}).json()["result"] == "ignored"
        missing = dict(live)
        del missing["livemode"]
        assert post(client, missing).json()["result"] == "ignored"  # a mode must be stated
        assert post(client, live).json()["result"] == "applied"
    assert row(db, "cus_L").desired == "present"


def test_the_mode_setting_and_an_api_key_of_the_other_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("NOREX_"):
            monkeypatch.delenv(name)
    assert load_settings().stripe_mode == "test"
    monkeypatch.setenv("NOREX_STRIPE_MODE", "live")
    assert load_settings(stripe_api_key="sk_live_" + "x" * 24).stripe_mode == "live"
    with pytest.raises(UsageError, match=r"^NOREX_STRIPE_API_KEY is a test-mode key but NOREX_STRIPE_MODE is live$"):
        load_settings(stripe_api_key="sk_test_" + "x" * 24)
    monkeypatch.setenv("NOREX_STRIPE_MODE", "production")
    with pytest.raises(UsageError, match=r"^NOREX_STRIPE_MODE: Input should be 'test' or 'live'"):
        load_settings()


# -- the embedded queue's file ---------------------------------------------------------------------------------


def test_the_embedded_queue_file_is_private(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Like the database: 0600 in a 0700 folder, the default place and a sqlite:/// queue alike; a file an
    earlier version made 0644 is narrowed."""
    from norex.jobs.queue import make_huey

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'norex.db'}")
    make_huey(settings)
    default = tmp_path / "xdg" / "norex" / "queue.db"
    assert stat.S_IMODE(default.stat().st_mode) == 0o600
    assert stat.S_IMODE(default.parent.stat().st_mode) == 0o700
    old = tmp_path / "old" / "queue.db"
    old.parent.mkdir()
    old.write_bytes(b"")
    old.chmod(0o644)
    make_huey(settings.model_copy(update={"queue_url": f"sqlite:///{old}"}))
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
