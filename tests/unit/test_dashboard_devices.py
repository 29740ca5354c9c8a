"""The dashboard's device routes over HTTP, on a real SQLite database, logged in through a real emailed link:
listing with live dots, adding with a public key only, renaming, removing with a confirmation; another
customer's device is 404 and untouched; markup in a name is escaped; CSRF is required. The live status is
given as the agent client would return it (the agent itself runs on lab servers: tests/e2e)."""

from __future__ import annotations

import json
import subprocess

import pytest
from starlette.testclient import TestClient

from norex.db.models import Customer, Device, Server
from norex.devices import store
from norex.web.dashboard import create_dashboard
from tests.unit.dashboard_support import csrf_of, log_in, settings_for

ANNA, BOB = "c-00000000000000a1", "c-00000000000000b2"


def wg_public_key() -> str:
    private = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout
    return subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def fleet(dashboard_db):
    server_key = wg_public_key()
    with dashboard_db.write() as session:
        for cid, email in ((ANNA, "anna@example.com"), (BOB, "bob@example.com")):
            session.add(Customer(id=cid, stripe_customer_id="cus_" + cid, email=email, status="active",
                                 desired="present", created_at=1))  # fmt: skip
            session.add(Server(customer_id=cid, backend="lab", name=cid, ipv4="198.51.100.9", ipv6="2001:db8::9",
                               public_key=server_key, state="ready", updated_at=1))  # fmt: skip
    return server_key


@pytest.fixture
def anna(dashboard_db, smtp, fleet):
    inbox, port = smtp
    applied: list[str] = []
    live: dict[str, dict] = {}
    app = create_dashboard(
        settings_for(dashboard_db, port), dashboard_db, apply_devices=applied.append, live_status=lambda _cid: live
    )
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        log_in(client, inbox, "anna@example.com")
        yield client, applied, live


def add(client: TestClient, name: str, public_key: str):
    token = csrf_of(client.get("/devices").text)
    return client.post(
        "/devices", data={"csrf": token, "name": name, "public_key": public_key}, headers={"accept": "application/json"}
    )


def test_a_device_added_with_its_public_key_only_is_listed_with_its_live_dot(anna, dashboard_db):
    client, applied, live = anna
    key = wg_public_key()
    added = add(client, "Anna's <b>phone</b>", key)
    assert added.status_code == 200 and applied == [ANNA]
    answer = added.json()
    assert set(answer) == {"id", "name", "config", "placeholder"}
    assert answer["placeholder"] in answer["config"] and "PrivateKey = " + answer["placeholder"] in answer["config"]
    assert "Endpoint = 198.51.100.9:51820" in answer["config"]
    live[key] = {"online": True, "rx_bytes": 1500, "tx_bytes": 2500}
    page = client.get("/devices")
    assert "Anna&#39;s &lt;b&gt;phone&lt;/b&gt;" in page.text and "<b>phone</b>" not in page.text
    assert 'class="dot online"' in page.text and "4.0 kB" in page.text
    status = client.get("/devices/status").json()
    assert status == {"devices": {answer["id"]: {"online": True, "transfer": "4.0 kB"}}, "blocked": None}
    with dashboard_db.read() as session:
        (device,) = session.query(Device).all()
        assert device.public_key == key and device.customer_id == ANNA


def test_without_javascript_a_pasted_key_adds_a_device_and_a_bad_key_is_a_clear_error(anna):
    client, applied, _ = anna
    token = csrf_of(client.get("/devices").text)
    bad = client.post("/devices", data={"csrf": token, "name": "x", "public_key": "not a key"})
    assert bad.status_code == 400 and "not a WireGuard public key" in bad.text and applied == []
    empty = client.post("/devices", data={"csrf": token, "name": "x", "public_key": ""})
    assert empty.status_code == 400  # never a key pair made on our side
    good = client.post("/devices", data={"csrf": token, "name": "laptop", "public_key": wg_public_key()})
    assert good.status_code == 200 and "Device added: laptop" in good.text and applied == [ANNA]
    refused = client.post("/devices", data={"name": "y", "public_key": wg_public_key()})
    assert refused.status_code == 403


def test_another_customer_s_device_is_404_and_stays_as_it_was(anna, dashboard_db):
    client, applied, _ = anna
    bob = store.add(dashboard_db, BOB, "Bob's phone", wg_public_key())
    token = csrf_of(client.get("/devices").text)
    assert client.get(f"/devices/{bob.id}/remove").status_code == 404
    assert client.post(f"/devices/{bob.id}/remove", data={"csrf": token}).status_code == 404
    assert client.post(f"/devices/{bob.id}/rename", data={"csrf": token, "name": "mine"}).status_code == 404
    assert client.post("/devices/Bob's phone/rename", data={"csrf": token, "name": "mine"}).status_code == 404
    assert [d["name"] for d in store.list_devices(dashboard_db, BOB)] == ["Bob's phone"] and applied == []
    assert "Bob" not in client.get("/devices").text


def test_rename_and_remove_with_a_confirmation(anna, dashboard_db):
    client, applied, _ = anna
    device = add(client, "old", wg_public_key()).json()
    token = csrf_of(client.get("/devices").text)
    renamed = client.post(
        f"/devices/{device['id']}/rename", data={"csrf": token, "name": "new"}, follow_redirects=False
    )
    assert renamed.status_code == 303 and [d["name"] for d in store.list_devices(dashboard_db, ANNA)] == ["new"]
    confirm = client.get(f"/devices/{device['id']}/remove")
    assert confirm.status_code == 200 and "Remove new?" in confirm.text
    assert store.list_devices(dashboard_db, ANNA) != []  # asking is not removing
    gone = client.post(f"/devices/{device['id']}/remove", data={"csrf": csrf_of(confirm.text)}, follow_redirects=False)
    assert gone.status_code == 303 and store.list_devices(dashboard_db, ANNA) == [] and applied == [ANNA, ANNA]


def test_nothing_of_an_endpoint_reaches_the_page_and_strangers_get_nothing(anna, dashboard_db, smtp):
    client, _, live = anna
    key = wg_public_key()
    add(client, "phone", key)
    # Even if an agent said more than it does, only online and transfer are passed on.
    live[key] = {"online": False, "rx_bytes": 0, "tx_bytes": 0, "endpoint": "203.0.113.50:41234"}
    for text in (client.get("/devices").text, json.dumps(client.get("/devices/status").json())):
        assert "203.0.113.50" not in text and "endpoint" not in text.lower()
    _, port = smtp
    with TestClient(
        create_dashboard(settings_for(dashboard_db, port), dashboard_db), base_url="http://127.0.0.1:8000"
    ) as stranger:
        assert stranger.get("/devices", follow_redirects=False).headers["location"] == "/login"
        assert stranger.get("/devices/status").status_code == 401


def test_the_blocked_lookups_are_one_number_and_since_when(dashboard_db, smtp, fleet):
    inbox, port = smtp
    tally = {"blocked": 41, "queries": 900, "since_seconds": 3 * 3600 + 5}
    settings = settings_for(dashboard_db, port)
    app = create_dashboard(settings, dashboard_db, live_status=lambda _cid: {}, dns_tally=lambda _cid: tally)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        log_in(client, inbox, "anna@example.com")
        page = " ".join(client.get("/devices").text.split())
        assert '<strong id="blocked">41</strong> lookups' in page and "in the last 3 hours" in page
        tally["blocked"] = 42
        assert client.get("/devices/status").json()["blocked"] == 42
