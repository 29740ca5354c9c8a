"""What the dashboard's tests share: a real SMTP server on loopback (aiosmtpd) that keeps what it receives, the
settings of a dashboard on loopback, and logging in through an emailed link. The fixtures are in conftest.py."""

from __future__ import annotations

import re
import secrets
import socket
from pathlib import Path

from starlette.testclient import TestClient

from norex.db.database import Database
from norex.settings import load_settings
from tests.unit.control_support import SECRET


class Inbox:
    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's hook name
        self.messages.append(envelope.content.decode())
        return "250 OK"

    def link(self) -> str:
        (found,) = re.findall(r"http://127\.0\.0\.1:\d+(/login/[A-Za-z0-9_-]+)", self.messages[-1])
        return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_for(db: Database, port: int, **extra):
    values = {
        "database_url": str(db.engine.url),
        "stripe_webhook_secret": SECRET,
        "session_secret": secrets.token_urlsafe(32),
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "dashboard_url": "http://127.0.0.1:8000",
        # The control plane's own blocklist folder beside the test's database, never this machine's data folder
        # (where a benchmark or `norex demo` may have built one).
        "blocklist_dir": Path(db.engine.url.database).parent / "blocklist",
    }
    return load_settings(**(values | extra))


def csrf_of(html: str) -> str:
    (token,) = set(re.findall(r'name="csrf" value="([^"]+)"', html))
    return token


def ask_link(client: TestClient, email: str):
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"csrf": token, "email": email}, follow_redirects=False)


def log_in(client: TestClient, inbox: Inbox, email: str) -> str:
    assert ask_link(client, email).status_code == 200
    link = inbox.link()
    confirm = client.get(link)
    assert confirm.status_code == 200 and "Log in to NorexVPN" in confirm.text
    done = client.post(link, data={"csrf": csrf_of(confirm.text)}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/account"
    return link
