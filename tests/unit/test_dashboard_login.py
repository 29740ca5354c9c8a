"""The dashboard's accounts, through its HTTP routes (Starlette's test client) with a real SMTP server on loopback
(aiosmtpd) and a real SQLite database: one-time login links, sessions, CSRF, rate limits, body caps, headers."""

from __future__ import annotations

import re
import time

import pytest
from starlette.testclient import TestClient

from norex.db.models import Customer, LoginLink
from norex.settings import load_settings
from norex.web import accounts
from norex.web.dashboard import create_dashboard
from norex.web.webhook import create_app
from tests.unit.control_support import SECRET
from tests.unit.dashboard_support import ask_link, csrf_of, free_port, log_in, settings_for


@pytest.fixture
def client(dashboard_db, smtp):
    _, port = smtp
    app = create_app(settings_for(dashboard_db, port), lambda _cid: None, db=dashboard_db)
    with TestClient(app, base_url="http://127.0.0.1:8000") as test_client:
        yield test_client


def test_a_new_email_gets_a_link_that_logs_in_once(client, smtp, dashboard_db, tmp_path):
    inbox, _ = smtp
    link = log_in(client, inbox, "Anna@Example.com ")
    page = client.get("/account")
    assert page.status_code == 200 and "anna@example.com" in page.text and "none yet" in page.text
    token = link.rsplit("/", 1)[1]
    # Used up: the row is gone, and the token itself was never stored (only its SHA-256 was).
    with dashboard_db.read() as session:
        assert session.query(LoginLink).count() == 0
    assert token.encode() not in (tmp_path / "norex.db").read_bytes()
    # Logged out, the same link gives a clear page and no session.
    out = client.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/account", follow_redirects=False).headers["location"] == "/login"
    confirm = client.get(link)
    again = client.post(link, data={"csrf": csrf_of(confirm.text)}, follow_redirects=False)
    assert again.status_code == 400 and "This link no longer works" in again.text
    assert client.get("/account", follow_redirects=False).status_code == 303


def test_a_known_email_logs_into_its_customer_and_the_answer_tells_nothing(client, smtp, dashboard_db):
    inbox, _ = smtp
    with dashboard_db.write() as session:
        session.add(Customer(id="c-0123456789abcdef", stripe_customer_id="cus_K", email="Known@example.com",
                             status="active", created_at=1))  # fmt: skip
    known = ask_link(client, "known@example.com")
    unknown = ask_link(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    strip = re.compile(r'name="csrf" value="[^"]+"|known@example\.com|nobody@example\.com')
    assert strip.sub("", known.text) == strip.sub("", unknown.text)
    assert len(inbox.messages) == 2  # a sign-up link for the unknown email too
    link = re.findall(r"http://127\.0\.0\.1:8000(/login/[A-Za-z0-9_-]+)", inbox.messages[0])[0]
    confirm = client.get(link)
    client.post(link, data={"csrf": csrf_of(confirm.text)})
    page = client.get("/account")
    assert "Known@example.com" in page.text and "active" in page.text


def test_forms_without_the_right_csrf_token_are_refused(client, smtp, dashboard_db):
    inbox, _ = smtp
    client.get("/login")
    for data in ({"email": "a@example.com"}, {"email": "a@example.com", "csrf": "wrong"}):
        refused = client.post("/login", data=data)
        assert refused.status_code == 403 and "Form expired" in refused.text
    assert inbox.messages == []
    with dashboard_db.read() as session:
        assert session.query(LoginLink).count() == 0
    log_in(client, inbox, "a@example.com")
    assert client.post("/logout", data={"csrf": "wrong"}).status_code == 403
    assert client.get("/account", follow_redirects=False).status_code == 200  # still logged in


def test_an_expired_link_gives_a_clear_page_and_no_session(dashboard_db, smtp):
    inbox, port = smtp
    now = [time.time()]
    app = create_dashboard(settings_for(dashboard_db, port), dashboard_db, clock=lambda: now[0])
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        assert ask_link(client, "late@example.com").status_code == 200
        link = inbox.link()
        confirm = client.get(link)
        now[0] += accounts.LINK_SECONDS + 1
        late = client.post(link, data={"csrf": csrf_of(confirm.text)}, follow_redirects=False)
        assert late.status_code == 400 and "expire after 15 minutes" in late.text
        assert client.get("/account", follow_redirects=False).headers["location"] == "/login"
    with dashboard_db.read() as session:
        assert session.query(LoginLink).count() == 0  # the expired row went with it


def test_link_requests_are_rate_limited_per_email(client, smtp):
    inbox, _ = smtp
    answers = [ask_link(client, "many@example.com").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429] and len(inbox.messages) == 3
    assert ask_link(client, "other@example.com").status_code == 200


def test_rate_limits_forget_after_their_window_and_hold_no_value_in_the_clear():
    limit = accounts.RateLimit(2, window=60)
    assert [limit.allow("198.51.100.7", now=t) for t in (0, 1, 2)] == [True, True, False]
    assert limit.allow("198.51.100.7", now=61) is True and len(limit) == 1
    assert all(b"198.51.100.7" not in key for key in limit._seen)
    assert limit.allow("x", now=200) and len(limit) == 1  # the old key is forgotten


def test_bad_input_is_refused_escaped_and_a_big_body_never_read(client, smtp):
    inbox, _ = smtp
    bad = ask_link(client, "<script>alert(1)</script>")
    assert bad.status_code == 400 and "<script>alert" not in bad.text and "&lt;script&gt;" in bad.text
    assert "enter an email address" in bad.text
    big = client.post(
        "/login", content=b"email=" + b"a" * (2 << 20), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert big.status_code == 413
    assert client.get("/login/" + "x" * 40, follow_redirects=False).status_code == 200  # a form, not a login
    assert inbox.messages == []


def test_every_page_carries_the_security_headers_and_the_cookie_is_locked_down(client):
    page = client.get("/login")
    assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "no-referrer"
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie  # http on loopback
    assert client.get("/static/style.css").status_code == 200


def test_the_cookie_is_secure_on_a_public_dashboard(dashboard_db, smtp):
    _, port = smtp
    app = create_dashboard(settings_for(dashboard_db, port, dashboard_url="https://vpn.example.com"), dashboard_db)
    with TestClient(app, base_url="https://vpn.example.com") as client:
        assert "secure" in client.get("/login").headers["set-cookie"].lower()


def test_an_unreachable_smtp_server_is_a_clear_page(dashboard_db):
    app = create_dashboard(settings_for(dashboard_db, free_port()), dashboard_db)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        failed = ask_link(client, "a@example.com")
        assert failed.status_code == 503 and "could not send the email" in failed.text


def test_without_a_session_secret_there_is_no_dashboard(dashboard_db):
    settings = load_settings(database_url=str(dashboard_db.engine.url), stripe_webhook_secret=SECRET)
    with TestClient(create_app(settings, lambda _cid: None, db=dashboard_db)) as client:
        assert client.get("/login").status_code == 404
        assert client.get("/healthz").text == "ok"
