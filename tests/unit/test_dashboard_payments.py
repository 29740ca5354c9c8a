"""Paying in the dashboard, over HTTP: `norex serve`'s app (webhook and dashboard) under uvicorn on loopback,
the Stripe stand-in (localstripe) as a separate process sending its signed events to it, a real SMTP server for
the login link. What Stripe.js does in the customer's browser (confirm the SetupIntent with the card, at Stripe)
is done here by posting to the stand-in with the publishable key, as Stripe.js does; the browser test
(tests/e2e/test_devices_lab.py) does it with the real page.

Hosted Checkout and the Customer Portal are not in the stand-in: there the request we send is compared with a
recorded one (tests/unit/recorded/), on a loopback server that answers as Stripe does.
"""

from __future__ import annotations

import http.server
import json
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qsl

import httpx
import pytest
import stripe
import uvicorn

from norex.db.database import Database
from norex.db.models import Customer
from norex.demo.plane import register_webhook
from norex.net import port_open
from norex.web.webhook import create_app
from tests.unit.dashboard_support import csrf_of, free_port, log_in, settings_for
from tests.unit.test_control_stripe_api import FakeStripe

RECORDED = Path(__file__).with_name("recorded")
PUBLISHABLE = "pk_test_" + "a" * 24
PRICE = "norex-monthly"
GOOD, DECLINED, OTHER_GOOD = "4242424242424242", "4000000000000002", "5555555555554444"


def wait(what: str, condition, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def standin() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "norex.stripe_standin", str(port)])
    try:
        wait("the Stripe stand-in", lambda: port_open("127.0.0.1", port))
        base = f"http://127.0.0.1:{port}"
        client = stripe.StripeClient("sk_test_" + "b" * 24, base_addresses={"api": base})
        product = client.v1.products.create(params={"name": "NorexVPN"})
        client.v1.plans.create(
            params={"id": PRICE, "amount": 500, "currency": "eur", "interval": "month", "product": product.id}
        )
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


class Served:
    """The app under uvicorn in a thread; `enqueued` records what the worker would have been asked."""

    def __init__(self, app, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait("the dashboard", lambda: self.server.started)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def site(standin, dashboard_db: Database, smtp, tmp_path):
    inbox, smtp_port = smtp
    port = free_port()
    secret = "whsec_" + secrets.token_hex(16)
    settings = settings_for(
        dashboard_db,
        smtp_port,
        dashboard_url=f"http://127.0.0.1:{port}",
        stripe_webhook_secret=secret,
        stripe_api_key="sk_test_" + "b" * 24,
        stripe_api_base=standin,
        stripe_publishable_key=PUBLISHABLE,
        stripe_price=PRICE,
        stripe_js_url=f"{standin}/js.stripe.com/v3/",
    )
    enqueued: list[str] = []
    served = Served(create_app(settings, enqueued.append), port)
    register_webhook(standin, f"http://127.0.0.1:{port}/stripe/webhook", secret)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20)
    stripe_client = stripe.StripeClient("sk_test_" + "b" * 24, base_addresses={"api": standin})
    try:
        yield {"client": client, "inbox": inbox, "db": dashboard_db, "enqueued": enqueued, "stripe": stripe_client,
               "standin": standin, "tmp": tmp_path}  # fmt: skip
    finally:
        client.close()
        served.stop()


def confirm_card(standin: str, client_secret: str, number: str) -> httpx.Response:
    """What Stripe.js does in the browser: the card goes to Stripe (the stand-in) with the publishable key."""
    seti = client_secret.split("_secret_")[0]
    card = {"number": number, "exp_month": "12", "exp_year": "2035", "cvc": "123"}
    body = {"key": PUBLISHABLE, "client_secret": client_secret, "payment_method_data": {"type": "card", "card": card}}
    return httpx.post(f"{standin}/v1/setup_intents/{seti}/confirm", content=json.dumps(body), timeout=10)


def post(client: httpx.Client, url: str, csrf: str, **fields: str) -> httpx.Response:
    return client.post(url, data={"csrf": csrf, **fields}, headers={"accept": "application/json"})


def pay(site, number: str = GOOD) -> tuple[str, httpx.Response]:
    client = site["client"]
    page = client.get("/subscribe")
    assert page.status_code == 200
    csrf = csrf_of(page.text)
    started = post(client, "/subscribe/start", csrf)
    assert started.status_code == 200, started.text
    secret = started.json()["client_secret"]
    confirmed = confirm_card(site["standin"], secret, number)
    return csrf, post(client, "/subscribe", csrf, setup_intent=secret.split("_secret_")[0]) if (
        confirmed.status_code == 200
    ) else confirmed


def row_of(db: Database, email: str) -> Customer | None:
    with db.read() as session:
        return session.query(Customer).filter_by(email=email).one_or_none()


def subscribed(site, email: str) -> Customer:
    log_in(site["client"], site["inbox"], email)
    _csrf, done = pay(site)
    assert done.status_code == 200 and done.json() == {"next": "/account"}, done.text
    return wait("the webhook's subscription", lambda: (r := row_of(site["db"], email)) and r.status == "active" and r)


def test_subscribing_with_the_card_form_makes_the_stripe_customer_and_subscription(site):
    client, email = site["client"], f"pay-{secrets.token_hex(3)}@example.test"
    log_in(client, site["inbox"], email)
    page = client.get("/subscribe")
    assert "5.00 EUR a month" in page.text
    assert f'<script src="{site["standin"]}/js.stripe.com/v3/"></script>' in page.text
    policy = page.headers["content-security-policy"]
    assert f"script-src 'self' {site['standin']}" in policy and f"connect-src 'self' {site['standin']}" in policy
    row = subscribed(site, email)
    assert row.id in site["enqueued"]  # the webhook asked the worker for a server
    at_stripe = site["stripe"].v1.customers.retrieve(row.stripe_customer_id)
    assert at_stripe.email == email and at_stripe.invoice_settings.default_payment_method
    account = client.get("/account")
    assert "active" in account.text and 'href="/billing"' in account.text
    # No server row yet (no worker here): the page says it is being made and refreshes itself.
    assert "being made" in account.text and '<meta http-equiv="refresh" content="5">' in account.text
    # Paying again is refused: one subscription per customer.
    assert post(client, "/subscribe/start", csrf_of(account.text)).status_code == 409
    assert client.get("/subscribe", follow_redirects=False).headers["location"] == "/billing"


def test_a_declined_card_says_so_and_makes_no_subscription(site):
    client, email = site["client"], f"declined-{secrets.token_hex(3)}@example.test"
    log_in(client, site["inbox"], email)
    csrf, declined = pay(site, DECLINED)
    assert declined.status_code == 402 and declined.json()["error"]["message"] == "Your card was declined."
    # The page would still send the SetupIntent's id: refused, nothing made.
    seti = post(client, "/subscribe/start", csrf).json()["client_secret"].split("_secret_")[0]
    finish = post(client, "/subscribe", csrf, setup_intent=seti)
    assert finish.status_code == 402 and "not confirmed" in finish.json()["error"]
    time.sleep(0.5)
    row = row_of(site["db"], email)
    assert row is None or (row.subscription_id is None and row.id not in site["enqueued"])
    assert "being made" not in client.get("/account").text
    customers = site["stripe"].v1.customers.list(params={"email": email}).data
    assert len(customers) == 1  # made once, however many tries
    assert not site["stripe"].v1.subscriptions.list(params={"customer": customers[0].id}).data
    # A good card afterwards works, for the same Stripe customer.
    csrf, done = pay(site, GOOD)
    assert done.status_code == 200
    assert wait("active", lambda: (r := row_of(site["db"], email)) and r.status == "active")


def test_a_setup_intent_of_someone_else_or_a_bad_one_or_no_csrf_changes_nothing(site):
    client = site["client"]
    other = site["stripe"].v1.customers.create(params={"email": "other@example.test"})
    theirs = site["stripe"].v1.setup_intents.create(params={"customer": other.id})
    confirm_card(site["standin"], theirs.client_secret, GOOD)
    log_in(client, site["inbox"], f"me-{secrets.token_hex(3)}@example.test")
    csrf = csrf_of(client.get("/subscribe").text)
    post(client, "/subscribe/start", csrf)
    stolen = post(client, "/subscribe", csrf, setup_intent=theirs.id)
    assert stolen.status_code == 402 and "not yours" in stolen.json()["error"]
    assert post(client, "/subscribe", csrf, setup_intent="<script>").status_code == 400
    assert post(client, "/subscribe/start", "wrong").status_code == 403
    assert not site["stripe"].v1.subscriptions.list(params={"customer": other.id}).data


def test_billing_cancel_resume_replace_the_card_and_invoices(site):
    client, email = site["client"], f"bill-{secrets.token_hex(3)}@example.test"
    row = subscribed(site, email)
    page = client.get("/billing")
    assert "Renews on" in page.text and "Visa ending in 4242" in page.text
    assert 'id="invoices"' in page.text and "5.00 EUR" in page.text
    csrf = csrf_of(page.text)
    cancelled = client.post("/billing/cancel", data={"csrf": csrf})
    assert cancelled.status_code == 303 and cancelled.headers["location"] == "/billing"
    with site["db"].read() as session:
        assert session.get(Customer, row.id).cancel_at_period_end is True
    page = client.get("/billing")
    assert "Ends on" in page.text and "Keep my subscription" in page.text
    client.post("/billing/resume", data={"csrf": csrf})
    with site["db"].read() as session:
        assert session.get(Customer, row.id).cancel_at_period_end is False
    assert site["stripe"].v1.subscriptions.retrieve(row.subscription_id).cancel_at_period_end is False
    # Replace the card: a SetupIntent, confirmed at Stripe; the old card is removed there.
    old = site["stripe"].v1.customers.retrieve(row.stripe_customer_id).invoice_settings.default_payment_method
    secret = post(client, "/billing/card/start", csrf).json()["client_secret"]
    assert confirm_card(site["standin"], secret, OTHER_GOOD).status_code == 200
    assert post(client, "/billing/card", csrf, setup_intent=secret.split("_secret_")[0]).json() == {"next": "/billing"}
    assert "ending in 4444" in client.get("/billing").text
    assert site["stripe"].v1.payment_methods.retrieve(old).customer is None
    assert client.post("/billing/cancel", data={"csrf": "wrong"}).status_code == 403


POSTS = ["/subscribe", "/subscribe/start", "/subscribe/checkout", "/billing/cancel", "/billing/resume",
         "/billing/card/start", "/billing/card", "/billing/portal", "/close"]  # fmt: skip


def test_every_payment_form_without_its_csrf_token_is_refused_and_changes_nothing(site):
    client, email = site["client"], f"csrf-{secrets.token_hex(3)}@example.test"
    row = subscribed(site, email)
    before = site["stripe"].v1.subscriptions.retrieve(row.subscription_id)
    for path in POSTS:
        for fields in ({}, {"csrf": "forged"}):
            answer = client.post(path, data={**fields, "setup_intent": "seti_1"}, follow_redirects=False)
            assert answer.status_code == 403, (path, fields, answer.status_code)
    after = site["stripe"].v1.subscriptions.retrieve(row.subscription_id)
    assert (
        (after.status, after.cancel_at_period_end) == (before.status, before.cancel_at_period_end) == ("active", False)
    )
    assert site["stripe"].v1.customers.retrieve(row.stripe_customer_id).email == email
    assert row_of(site["db"], email) is not None


def test_closing_the_account_cancels_deletes_at_stripe_and_erases_here(site):
    client, email = site["client"], f"close-{secrets.token_hex(3)}@example.test"
    row = subscribed(site, email)
    confirm = client.get("/close")
    assert "cancels your subscription" in confirm.text and "destroys your server" in confirm.text
    assert client.post("/close", data={"csrf": "nope"}).status_code == 403
    done = client.post("/close", data={"csrf": csrf_of(confirm.text)})
    assert done.status_code == 200 and "Your account is closed" in done.text and "being destroyed" in done.text
    # With no server to destroy here, Stripe's events erase the row at once.
    wait("the erasure", lambda: row_of(site["db"], email) is None and site["db"].engine.dispose() is None)
    assert site["stripe"].v1.subscriptions.retrieve(row.subscription_id).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError):
        site["stripe"].v1.customers.retrieve(row.stripe_customer_id)
    files = [p for p in site["tmp"].glob("norex.db*") if email.encode() in p.read_bytes()]
    assert files == []
    assert client.get("/account", follow_redirects=False).headers["location"] == "/login"


# -- hosted Checkout and the Customer Portal, against a recorded request --------------------------------------


class RecordingStripe(FakeStripe):
    """Answers /v1/checkout/sessions, /v1/billing_portal/sessions and /v1/plans/ID as Stripe does; keeps the bodies."""

    seen: ClassVar[list[tuple[str, list[tuple[str, str]]]]] = []

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["content-length"])).decode()
        RecordingStripe.seen.append((self.path, parse_qsl(raw)))
        kind = "checkout.session" if "checkout" in self.path else "billing_portal.session"
        self.reply(200, {"id": "cs_test_1", "object": kind, "url": f"https://stripe.invalid/{kind}"})

    def do_GET(self) -> None:
        self.reply(200, {"id": PRICE, "object": "plan", "amount": 500, "currency": "eur", "interval": "month"})


def test_hosted_checkout_and_portal_send_the_recorded_parameters(dashboard_db, smtp):
    from starlette.testclient import TestClient

    from norex.web.dashboard import create_dashboard

    RecordingStripe.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordingStripe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    inbox, port = smtp
    settings = settings_for(
        dashboard_db,
        port,
        stripe_api_key="sk_test_" + "b" * 24,
        stripe_api_base=f"http://127.0.0.1:{server.server_address[1]}",
        stripe_price=PRICE,
        stripe_checkout=True,
    )
    try:
        client = TestClient(create_dashboard(settings, dashboard_db), base_url="http://127.0.0.1:8000")
        email = "hosted@example.test"
        log_in(client, inbox, email)
        page = client.get("/subscribe")
        assert "Pay with Stripe" in page.text and "js.stripe.com" not in page.text
        assert "form-action 'self' https://checkout.stripe.com" in page.headers["content-security-policy"]
        sent = client.post("/subscribe/checkout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
        assert sent.status_code == 303 and sent.headers["location"] == "https://stripe.invalid/checkout.session"
        (_path, fields), *_ = [s for s in RecordingStripe.seen if s[0] == "/v1/checkout/sessions"]
        recorded = json.loads((RECORDED / "checkout_session_new_customer.json").read_text())
        assert sorted(fields) == sorted(map(tuple, recorded))
        assert not any(k == "client_reference_id" for k, _ in fields)  # no id of ours yet, and never the email
        # A customer we know: their Stripe id and our opaque id as the reference, no email at all.
        with dashboard_db.write() as session:
            session.add(Customer(id="c-0123456789abcdef", email=email, stripe_customer_id="cus_Hosted1",
                                 status="canceled", desired="absent", created_at=1))  # fmt: skip
        client.post("/subscribe/checkout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
        fields = RecordingStripe.seen[-1][1]
        recorded = json.loads((RECORDED / "checkout_session_known_customer.json").read_text())
        assert sorted(fields) == sorted(map(tuple, recorded)) and email not in json.dumps(fields)
        portal = client.post("/billing/portal", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
        assert portal.headers["location"] == "https://stripe.invalid/billing_portal.session"
        assert RecordingStripe.seen[-1] == (
            "/v1/billing_portal/sessions",
            [("customer", "cus_Hosted1"), ("return_url", "http://127.0.0.1:8000/billing")],
        )
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("stripe_publishable_key", "sk_test_secret", "publishable key"),
        ("stripe_publishable_key", "pk_live_abc", "live-mode key"),
        ("stripe_js_url", "http://js.example.test/v3/", "https:// URL"),
    ],
)
def test_payment_settings_are_checked(name, value, says):
    from norex.errors import UsageError
    from norex.settings import load_settings

    with pytest.raises(UsageError, match=says):
        load_settings(**{name: value})
