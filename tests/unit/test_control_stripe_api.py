"""The worker's re-check: fetch the subscription from a Stripe stand-in on loopback, apply it, fail in one line."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import select

from norex.billing import store
from norex.billing.stripe_api import StripeUnavailable, fetch_subscription, refresh_customer
from norex.db import Customer, Database
from norex.settings import Settings
from tests.unit.control_support import database, sub_event

CUS = "cus_ApiTest01"
NOW = 1_700_000_000


class FakeStripe(http.server.BaseHTTPRequestHandler):
    """GET /v1/subscriptions/ID answers from `subscriptions`; anything else is Stripe's 404."""

    subscriptions: ClassVar[dict[str, dict]] = {}
    broken: ClassVar[bool] = False
    seen: ClassVar[list[tuple[str, str]]] = []

    def do_GET(self) -> None:
        FakeStripe.seen.append((self.path, self.headers.get("authorization", "")))
        sub = FakeStripe.subscriptions.get(self.path.removeprefix("/v1/subscriptions/"))
        if FakeStripe.broken:
            self.reply(500, {"error": {"type": "api_error", "message": "boom"}})
        elif sub is None:
            msg = f"No such subscription: '{self.path.rsplit('/', 1)[1]}'"
            self.reply(404, {"error": {"type": "invalid_request_error", "code": "resource_missing", "message": msg}})
        else:
            self.reply(200, sub)

    def reply(self, status: int, data: dict) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stripe_base() -> Iterator[str]:
    FakeStripe.subscriptions, FakeStripe.broken, FakeStripe.seen = {}, False, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeStripe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with database("sqlite", tmp_path) as db:
        yield db


def settings(db: Database, base: str, key: str | None = "sk_test_norex") -> Settings:
    return Settings(database_url=db.url, stripe_api_key=key, stripe_api_base=base, stripe_webhook_secret="whsec_x")


def active_customer(db: Database) -> str:
    with db.write() as session:
        outcome = store.apply_event(session, sub_event("created", "sub_1", CUS, "active", NOW), NOW)
    assert outcome.customer_id is not None
    return outcome.customer_id


def desired(db: Database, customer_id: str) -> str:
    with db.read() as session:
        return session.scalars(select(Customer.desired).where(Customer.id == customer_id)).one()


def test_refresh_applies_what_stripe_says_now(db: Database, stripe_base: str) -> None:
    customer_id = active_customer(db)
    FakeStripe.subscriptions["sub_1"] = {"id": "sub_1", "object": "subscription", "customer": CUS, "status": "unpaid"}
    outcome = refresh_customer(db, settings(db, stripe_base), customer_id, now=NOW + 10)
    assert outcome == store.Outcome("applied", customer_id)
    assert desired(db, customer_id) == "absent"
    assert FakeStripe.seen == [("/v1/subscriptions/sub_1", "Bearer sk_test_norex")]


def test_refresh_without_a_key_or_a_subscription_asks_nothing(db: Database, stripe_base: str) -> None:
    customer_id = active_customer(db)
    assert refresh_customer(db, settings(db, stripe_base, key=None), customer_id).reason == "no Stripe API key"
    assert refresh_customer(db, settings(db, stripe_base), "c-0000000000000000").result == "ignored"
    assert FakeStripe.seen == []


def test_unknown_subscription_leaves_the_stored_decision(db: Database, stripe_base: str) -> None:
    customer_id = active_customer(db)
    outcome = refresh_customer(db, settings(db, stripe_base), customer_id)
    assert outcome.reason == "Stripe does not know the subscription"
    assert desired(db, customer_id) == "present"


def test_stripe_failure_is_one_line_without_ids(db: Database, stripe_base: str) -> None:
    FakeStripe.broken = True
    with pytest.raises(StripeUnavailable) as exc:
        fetch_subscription(settings(db, stripe_base), "sub_secret_id")
    assert "sub_secret_id" not in str(exc.value) and "\n" not in str(exc.value)
