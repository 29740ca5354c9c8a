"""The continuous audit's bookkeeping on a real database (SQLite and PostgreSQL): only the latest verdict per
server, a first failure re-converged, a second reported once, the schedule handing each due server out once,
and `norex audit status`. The audit itself runs on lab servers (tests/e2e/test_devices_lab.py)."""

from __future__ import annotations

import json
import time

import pytest

from norex.audit import continuous
from norex.audit.continuous import Verdict
from norex.db.database import Database
from norex.db.models import Customer, Server
from tests.unit.control_support import BACKENDS, database
from tests.unit.test_blocklist_cli import run

NOW = 1_800_000_000


def add(db: Database, cid: str, state: str = "ready") -> None:
    with db.write() as session:
        session.add(Customer(id=cid, stripe_customer_id="cus_" + cid, desired="present", created_at=NOW))
        session.add(Server(customer_id=cid, backend="lab", name=cid, state=state, updated_at=NOW))


@pytest.fixture(params=BACKENDS)
def db(request, tmp_path):
    with database(request.param, tmp_path) as db:
        yield db


def test_a_failure_is_reconverged_then_reported_once_and_a_pass_clears_it(db):
    add(db, "c-1")
    first = continuous.record(db, "c-1", Verdict("fail", ("capture.no_tools",), 1.0), NOW)
    assert (first.failures, first.reconverge, first.report) == (1, True, False)
    second = continuous.record(db, "c-1", Verdict("fail", ("capture.no_tools",), 1.0), NOW + 60)
    assert (second.failures, second.reconverge, second.report) == (2, False, True)
    third = continuous.record(db, "c-1", Verdict("fail", ("capture.no_tools",), 1.0), NOW + 3600)
    assert (third.reconverge, third.report) == (False, False)  # told once; the status keeps saying it
    (row,) = continuous.status_rows(db)
    assert row["verdict"] == "fail" and row["failed"] == "capture.no_tools" and row["needs_ops"]
    passed = continuous.record(db, "c-1", Verdict("pass", (), 1.0), NOW + 7200)
    assert passed.failures == 0 and not passed.reconverge
    (row,) = continuous.status_rows(db)
    assert row == {
        "customer": "c-1",
        "server": "c-1",
        "state": "ready",
        "verdict": "pass",
        "failed": "",
        "audited_at": NOW + 7200,
        "failures_in_a_row": 0,
        "needs_ops": False,
    }
    assert continuous.record(db, "c-gone", Verdict("pass", (), 1.0), NOW).verdict == "skipped"


def test_the_schedule_hands_each_due_ready_server_out_once(db):
    for cid in ("c-1", "c-2"):
        add(db, cid)
    add(db, "c-3", state="converging")
    # Never audited: counted from the converge (at NOW), which queued an audit of its own.
    assert continuous.claim_due(db, 3600, NOW + 60) == []
    assert continuous.claim_due(db, 3600, NOW + 3600) == ["c-1", "c-2"]
    assert continuous.claim_due(db, 3600, NOW + 3660) == []  # handed out: not again while queued
    continuous.record(db, "c-1", Verdict("fail", ("x",), 1.0), NOW + 3700)
    continuous.record(db, "c-1", Verdict("fail", ("x",), 1.0), NOW + 3800)
    assert continuous.claim_due(db, 3600, NOW + 7200) == ["c-2"]
    # Waiting for ops, still audited on schedule: a repair shows up by itself.
    assert continuous.claim_due(db, 3600, NOW + 7400) == ["c-1"]
    assert continuous.claim_due(db, 0, NOW + 10**6) == []  # NOREX_AUDIT_INTERVAL=0: no schedule


def test_norex_audit_status_exits_1_only_when_a_server_needs_ops(monkeypatch, capsys, tmp_path):
    url = f"sqlite:///{tmp_path / 'norex.db'}"
    monkeypatch.setenv("NOREX_DATABASE_URL", url)
    db = Database(url)
    db.upgrade()
    for cid in ("c-1", "c-2", "c-3"):
        add(db, cid)
    now = int(time.time())
    continuous.record(db, "c-1", Verdict("pass", (), 1.0), now)
    continuous.record(db, "c-2", Verdict("fail", ("capture.no_tools", "journald.settings"), 1.0), now)
    db.dispose()
    code, out, err = run(monkeypatch, capsys, "audit", "status")
    lines = out.splitlines()
    assert code == 0 and err == ""
    assert lines[0].split() == ["CUSTOMER", "SERVER", "STATE", "VERDICT", "FAILED", "AUDITED"]
    assert lines[1].split()[:5] == ["c-1", "c-1", "ready", "pass", "-"]
    assert lines[2].split()[:6] == ["c-2", "c-2", "ready", "fail", "capture.no_tools,", "journald.settings"]
    assert lines[3].split() == ["c-3", "c-3", "ready", "none", "yet", "-", "-"]
    db = Database(url)
    continuous.record(db, "c-2", Verdict("fail", ("capture.no_tools",), 1.0), now)
    db.dispose()
    code, out, err = run(monkeypatch, capsys, "audit", "status", "--json")
    assert code == 1 and err == "norex audit: 1 server(s) failed the audit again after a re-converge\n"
    data = json.loads(out)
    assert data["needs_ops"] == 1 and [r["needs_ops"] for r in data["servers"]] == [False, True, False]
    code, out, _ = run(monkeypatch, capsys, "customers", "list", "--json")
    audits = [c["audit"] for c in json.loads(out)["customers"]]
    assert sorted(audits, key=str) == sorted(["pass", "fail: capture.no_tools", None], key=str)
