"""The "What we store" page says what the roles and the database do: its figures are the roles' defaults, every
column of a customer's tables is named in plain words, and a customer sees their own server's latest audit."""

from __future__ import annotations

import html

import yaml
from starlette.testclient import TestClient

from norex.db.models import Customer, Device, LoginLink, Server
from norex.web.dashboard import create_dashboard
from norex.web.stored import PLAIN
from tests.conftest import REPO
from tests.unit.dashboard_support import log_in, settings_for

ROLES = REPO / "collections/ansible_collections/norex/vpn/roles"


def defaults(role: str) -> dict:
    return yaml.safe_load((ROLES / role / "defaults/main.yml").read_text())


def test_every_column_of_a_customer_s_tables_is_named_in_plain_words():
    for model in (Customer, Server, Device, LoginLink):
        assert set(PLAIN[model.__tablename__]) == {c.name for c in model.__table__.columns}, model.__tablename__


def test_the_figures_are_the_roles_and_a_customer_sees_their_audit(dashboard_db, smtp):
    inbox, port = smtp
    with dashboard_db.write() as session:
        session.add(Customer(id="c-00000000000000a1", stripe_customer_id="cus_a", email="anna@example.com",
                             status="active", desired="present", created_at=1))  # fmt: skip
        session.add(Server(customer_id="c-00000000000000a1", backend="lab", name="x", state="ready", updated_at=1,
                           audit_verdict="pass", audit_at=1_800_000_000, audit_failures=0))  # fmt: skip
    app = create_dashboard(settings_for(dashboard_db, port), dashboard_db, live_status=lambda _cid: None)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        anonymous = " ".join(html.unescape(client.get("/what-we-store").text).split())
        no_logs, firewall = defaults("no_logs"), defaults("firewall")
        agent = defaults("agent")
        for figure in (
            f"Storage={no_logs['no_logs_journald_storage']}",
            f"at most {no_logs['no_logs_journald_runtime_max_use']}",
            f"at most {defaults('resolver')['resolver_cache_max_ttl']} seconds",
            f"at most {firewall['firewall_conntrack_timeouts']['tcp_timeout_established']} seconds",
            f"dropped {agent['agent_online_seconds'] + agent['agent_purge_interval']} seconds",
            "your email", "Stripe's id for you", "its WireGuard public key", "the email it went to",
        ):  # fmt: skip
            assert figure in anonymous, figure
        assert "Your server's latest audit" not in anonymous
        log_in(client, inbox, "anna@example.com")
        page = " ".join(client.get("/what-we-store").text.split())
        assert "Your server's latest audit" in page and "Passed, 2027-01-15 08:00 UTC" in page
        assert "every 60 minutes" in page  # NOREX_AUDIT_INTERVAL's default


def test_the_account_page_shows_the_server_being_made_and_refreshes_until_it_is_ready(dashboard_db, smtp):
    inbox, port = smtp
    with dashboard_db.write() as session:
        session.add(Customer(id="c-00000000000000b2", stripe_customer_id="cus_b", email="bob@example.com",
                             status="active", desired="present", created_at=1))  # fmt: skip
        session.add(Server(customer_id="c-00000000000000b2", backend="lab", name="x", state="converging",
                           updated_at=1))  # fmt: skip
    app = create_dashboard(settings_for(dashboard_db, port), dashboard_db, live_status=lambda _cid: None)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        log_in(client, inbox, "bob@example.com")
        making = client.get("/account").text
        assert "being made" in making and "<progress" in making and 'http-equiv="refresh"' in making
        assert "/devices" not in making.split("</header>", 1)[1]
        with dashboard_db.write() as session:
            session.get(Server, "c-00000000000000b2").state = "ready"
        ready = client.get("/account").text
        assert "ready" in ready and "<progress" not in ready and "refresh" not in ready and 'href="/devices"' in ready


def test_the_blocklist_sources_page_is_the_configured_build_s(dashboard_db, smtp, tmp_path):
    from norex.blocklist.build import build
    from norex.blocklist.sources import DEFAULTS

    copies = REPO / "norex/lab/data/lists"
    own = tmp_path / "own.txt"
    own.write_text("ours.example.test\n")
    build([f"ads={own}"], tmp_path / "bl", defaults=True, mirror=copies.as_uri(), zone_type="always_refuse")
    _, port = smtp
    settings = settings_for(dashboard_db, port, blocklist_file=str(tmp_path / "bl" / "blocklist.conf"))
    with TestClient(create_dashboard(settings, dashboard_db), base_url="http://127.0.0.1:8000") as client:
        page = html.unescape(client.get("/blocklist-sources").text)
        assert 'href="/blocklist-sources"' in client.get("/what-we-store").text
    for source in DEFAULTS:
        assert f'<a href="{source.homepage}" rel="noreferrer">{source.title}</a>' in page and source.copyright in page
    assert "1 list of our own" in page and "Permission is hereby granted" in page and "We modified every list" in page
    assert "ours.example.test" not in page and "Open questions about terms" in page
    with TestClient(create_dashboard(settings_for(dashboard_db, port), dashboard_db)) as client:
        assert "no blocklist configured" in client.get("/blocklist-sources").text
