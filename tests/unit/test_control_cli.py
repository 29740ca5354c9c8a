"""Settings from the environment and the control plane's commands, as an operator runs them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from norex.billing import store
from norex.db import Customer, Database, Server
from norex.errors import UsageError
from norex.settings import load_settings
from tests.unit.control_support import SECRET, body, customer_event, sign, sub_event
from tests.unit.test_blocklist_cli import run  # the CLI entry point, in-process

NOREX = str(Path(sys.executable).with_name("norex"))
NOW = 1_700_000_000


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("NOREX_"):
            monkeypatch.delenv(name)


# -- settings -----------------------------------------------------------------------------------------------


def test_default_database_is_in_the_per_user_data_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert load_settings().database_url == f"sqlite:///{tmp_path}/xdg/norex/norex.db"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_settings().database_url == f"sqlite:///{tmp_path}/.local/share/norex/norex.db"


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOREX_DATABASE_URL", "postgres://u:p@127.0.0.1/db")
    monkeypatch.setenv("NOREX_STRIPE_WEBHOOK_SECRET", "whsec_new, whsec_old,")
    monkeypatch.setenv("NOREX_STRIPE_API_KEY", "")
    monkeypatch.setenv("NOREX_STRIPE_API_BASE", "http://127.0.0.1:8420/")
    monkeypatch.setenv("NOREX_BACKEND", "hcloud")
    monkeypatch.setenv("NOREX_PAST_DUE_GRACE_SECONDS", "3600")
    s = load_settings()
    assert s.database_url == "postgresql+psycopg://u:p@127.0.0.1/db"
    assert s.webhook_secrets == ["whsec_new", "whsec_old"]
    assert s.stripe_api_key is None
    assert (s.stripe_api_base, s.backend, s.past_due_grace_seconds) == ("http://127.0.0.1:8420", "hcloud", 3600)
    assert "whsec_new" not in repr(s)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("NOREX_BACKEND", "aws", "NOREX_BACKEND: Input should be 'lab' or 'hcloud'"),
        ("NOREX_LAB_IMAGE", "latest", "NOREX_LAB_IMAGE: Input should be 'stock' or 'prepared'"),
        ("NOREX_PAST_DUE_GRACE_SECONDS", "a week", "NOREX_PAST_DUE_GRACE_SECONDS: Input should be a valid integer"),
        ("NOREX_DATABASE_URL", "mysql://u:hunter2@db/x", "NOREX_DATABASE_URL: only sqlite:///PATH and postgresql"),
        ("NOREX_DATABASE_URL", "sqlite://", "NOREX_DATABASE_URL: SQLite needs a file path"),
        ("NOREX_DATABASE_URL", "not a url", "NOREX_DATABASE_URL: not a database URL"),
        ("NOREX_STRIPE_API_BASE", "localhost:12111", "NOREX_STRIPE_API_BASE: must be an http:// or https:// URL"),
    ],
)
def test_bad_settings_are_one_line_without_the_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(UsageError) as exc:
        load_settings()
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value) and "hunter2" not in str(exc.value)
    code, out, err = run(monkeypatch, capsys, "db", "upgrade")
    assert (code, out) == (2, "") and err.startswith(f"norex: error: {message}") and err.count("\n") == 1


# -- commands -----------------------------------------------------------------------------------------------


@pytest.fixture
def db_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'norex.db'}"
    monkeypatch.setenv("NOREX_DATABASE_URL", url)
    return url


def test_db_upgrade(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, db_url: str) -> None:
    code, out, _ = run(monkeypatch, capsys, "db", "upgrade")
    assert code == 0 and out == f"database {db_url} is at revision 0010\n"
    code, out, _ = run(monkeypatch, capsys, "db", "upgrade", "--json")
    assert code == 0 and json.loads(out) == {"database": db_url, "revision": "0010"}


def test_unreachable_database_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("NOREX_DATABASE_URL", "postgresql://norex:secretpw@127.0.0.1:9/nothing")
    code, _, err = run(monkeypatch, capsys, "db", "upgrade")
    assert code == 1 and err.count("\n") == 1 and "secretpw" not in err
    assert err.startswith("norex: error: cannot use the database at postgresql+psycopg://norex:***@127.0.0.1:9/nothing")


def test_customers_list_needs_a_migrated_database(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, db_url: str
) -> None:
    code, _, err = run(monkeypatch, capsys, "customers", "list")
    assert code == 1 and err == f"norex: error: the database at {db_url} has an older schema; run `norex db upgrade`\n"


def test_customers_list(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, db_url: str) -> None:
    db = Database(db_url)
    db.upgrade()
    with db.write() as session:
        store.apply_event(session, customer_event("created", "cus_A", "a@example.org", NOW), NOW)
        store.apply_event(session, sub_event("created", "sub_A", "cus_A", "active", NOW), NOW)
        store.apply_event(session, customer_event("created", "cus_B", "b@example.org", NOW + 1), NOW + 1)
    with db.read() as session:
        ids = {c.email: c.id for c in session.query(Customer)}
    with db.write() as session:
        session.add(
            Server(
                customer_id=ids["a@example.org"],
                backend="lab",
                name="x",
                ipv4="10.0.0.2",
                ipv6="fd00::2",
                state="ready",
                updated_at=NOW,
            )
        )
    db.dispose()

    code, out, _ = run(monkeypatch, capsys, "customers", "list", "--json")
    assert code == 0
    assert json.loads(out)["failed_events"] == {}
    assert json.loads(out)["customers"] == [
        {
            "id": ids["a@example.org"],
            "status": "active",
            "desired": "present",
            "server_state": "ready",
            "backend": "lab",
            "addresses": ["10.0.0.2", "fd00::2"],
            "audit": None,
            "error": None,
        },
        {
            "id": ids["b@example.org"],
            "status": None,
            "desired": "absent",
            "server_state": "absent",
            "backend": None,
            "addresses": [],
            "audit": None,
            "error": None,
        },
    ]
    code, out, _ = run(monkeypatch, capsys, "customers", "list", "--json", "--show-email")
    assert [c["email"] for c in json.loads(out)["customers"]] == ["a@example.org", "b@example.org"]

    code, out, _ = run(monkeypatch, capsys, "customers", "list")
    lines = out.splitlines()
    assert code == 0 and "@" not in out and len(lines) == 3
    assert lines[0].split() == ["ID", "STATUS", "DESIRED", "SERVER", "STATE", "BACKEND", "ADDRESSES", "AUDIT"]
    assert lines[1].split() == [ids["a@example.org"], "active", "present", "ready", "lab", "10.0.0.2,", "fd00::2", "-"]
    assert lines[2].split() == [ids["b@example.org"], "-", "absent", "absent", "-", "-", "-"]
    assert lines[1].index("present") == lines[0].index("DESIRED") == lines[2].index("absent")
    code, out, _ = run(monkeypatch, capsys, "customers", "list", "--show-email")
    assert "a@example.org" in out and out.splitlines()[0].endswith("EMAIL")


@pytest.mark.usefixtures("db_url")
def test_serve_needs_a_webhook_secret(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(monkeypatch, capsys, "serve")
    assert code == 2 and err.startswith("norex: error: NOREX_STRIPE_WEBHOOK_SECRET is not set")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_signed_events_and_logs_no_requests(tmp_path: Path) -> None:
    """`norex serve` as a process: loopback by default, the webhook works, and stderr shows no request at all."""
    port = free_port()
    env = {
        **os.environ,
        "NOREX_DATABASE_URL": f"sqlite:///{tmp_path / 'norex.db'}",
        "NOREX_STRIPE_WEBHOOK_SECRET": SECRET,
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    proc = subprocess.Popen([NOREX, "serve", "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "norex serve did not come up"
                time.sleep(0.1)
        evt = customer_event("created", "cus_Serve", "serve@example.org", int(time.time()))
        payload = body(evt)
        r = httpx.post(
            f"http://127.0.0.1:{port}/stripe/webhook", content=payload, headers={"stripe-signature": sign(payload)}
        )
        assert r.status_code == 200 and r.json()["result"] == "applied"
        r = httpx.post(f"http://127.0.0.1:{port}/stripe/webhook", content=payload, headers={"stripe-signature": "x"})
        assert r.status_code == 400 and "server" not in r.headers
        listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout
        assert listening.split()[3] == f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert err.splitlines()[0].startswith(f"norex: Stripe webhook on http://127.0.0.1:{port}/stripe/webhook")
    assert "POST" not in err and "GET" not in err and "serve@example.org" not in err and "cus_Serve" not in err
