"""Fixtures of the dashboard's unit tests (tests/unit/dashboard_support.py has the helpers)."""

from __future__ import annotations

import pytest
from aiosmtpd.controller import Controller

from norex.db.database import Database
from tests.unit.dashboard_support import Inbox, free_port


@pytest.fixture
def smtp():
    """A real SMTP server on loopback: (its inbox, its port)."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


@pytest.fixture
def dashboard_db(tmp_path):
    """A migrated SQLite database."""
    database = Database(f"sqlite:///{tmp_path / 'norex.db'}")
    database.upgrade()
    yield database
    database.dispose()
