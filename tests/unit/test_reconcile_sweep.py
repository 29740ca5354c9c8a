"""The reconcile sweep: every drifted customer and every orphaned server is found, with one backend listing."""

from __future__ import annotations

import time

import pytest

from norex.db.models import Customer, Server
from norex.errors import MissingPrerequisite, UsageError
from norex.jobs.reconcile import failed, record_failure, settled_present, sweep
from norex.provision import ServerHandle
from norex.settings import load_settings
from tests.unit.control_support import BACKENDS, database


class Listing:
    """A backend seen only through existing(): the sweep makes no other call (no remote call per customer)."""

    name = "lab"

    def __init__(self, existing: set[str]) -> None:
        self._existing = existing
        self.calls = 0

    def existing(self) -> set[str]:
        self.calls += 1
        return set(self._existing)

    def create(self, customer_id: str) -> ServerHandle:
        raise AssertionError("the sweep must not create")

    def destroy(self, customer_id: str) -> None:
        raise AssertionError("the sweep must not destroy")

    def find(self, customer_id: str) -> ServerHandle | None:
        raise AssertionError("the sweep must not look servers up one by one")


def add(session, cid: str, desired: str, state: str | None = None, erase: bool = False, status: str = "active"):
    now = int(time.time())
    session.add(
        Customer(
            id=cid,
            stripe_customer_id="cus_" + cid,
            status=status,
            status_since=now,
            desired=desired,
            erase_requested=erase,
            created_at=now,
            subscription_id="sub_" + cid,
        )
    )
    if state is not None:
        session.flush()
        session.add(Server(customer_id=cid, backend="lab", name=cid, state=state, updated_at=now))


@pytest.mark.parametrize("backend", BACKENDS)
def test_sweep_finds_drift_and_orphans(backend, tmp_path):
    with database(backend, tmp_path) as db:
        with db.write() as session:
            add(session, "c-00000001", "present", "ready")  # settled
            add(session, "c-00000002", "present", "ready")  # row says ready, server gone (destroyed by hand)
            add(session, "c-00000003", "present")  # a lost event or a crashed job: nothing made yet
            add(session, "c-00000004", "present", "converging")  # a worker died mid-converge
            add(session, "c-00000005", "absent", "destroying")  # a worker died mid-destroy
            add(session, "c-00000006", "absent")  # settled: nothing wanted, nothing there
            add(session, "c-00000007", "absent", erase=True)  # customer.deleted, not yet erased
            add(session, "c-00000008", "absent")  # cancelled, but the server is still there
        backend_view = Listing({"c-00000001", "c-00000004", "c-00000008", "c-0000dead"})
        result = sweep(db, load_settings(database_url=db.url), backend_view)
    assert backend_view.calls == 1
    assert result.customers == 8
    assert sorted(result.drifted) == [
        "c-00000002",
        "c-00000003",
        "c-00000004",
        "c-00000005",
        "c-00000007",
        "c-00000008",
    ]
    assert result.orphans == ["c-0000dead"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_sweep_ends_a_past_due_grace(backend, tmp_path):
    with database(backend, tmp_path) as db:
        with db.write() as session:
            add(session, "c-00000011", "present", "ready", status="past_due")
        settings = load_settings(database_url=db.url, past_due_grace_seconds=60)
        early = sweep(db, settings, Listing({"c-00000011"}), now=int(time.time()) + 30)
        assert early.expired == [] and early.drifted == []
        late = sweep(db, settings, Listing({"c-00000011"}), now=int(time.time()) + 120)
        assert late.expired == ["c-00000011"] and late.drifted == ["c-00000011"]
        with db.read() as session:
            assert session.get(Customer, "c-00000011").desired == "absent"


@pytest.mark.parametrize("backend", BACKENDS)
def test_converge_all_lists_every_customer_who_wants_a_server(backend, tmp_path):
    with database(backend, tmp_path) as db:
        with db.write() as session:
            add(session, "c-00000021", "present", "ready")
            add(session, "c-00000022", "present")
            add(session, "c-00000023", "absent")
        assert settled_present(db, exclude={"c-00000022"}) == ["c-00000021"]


def test_a_missing_blocklist_file_is_one_clear_error(tmp_path):
    with pytest.raises(UsageError, match=r"^NOREX_BLOCKLIST_FILE: not a file \(make one with: norex blocklist build"):
        load_settings(blocklist_file=str(tmp_path / "missing.conf"))
    listed = tmp_path / "blocklist.conf"
    listed.write_text("server:\n")
    assert load_settings(blocklist_file=str(listed)).blocklist_file == listed


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failure_is_kept_as_one_current_line_without_the_text_of_foreign_errors(backend, tmp_path):
    """Our own errors keep their one-line message; anything else only its class name (its text may carry data,
    e.g. a driver error quoting an email); a permanent one marks the server failed, which the sweep then
    reports instead of queueing it again and again."""
    with database(backend, tmp_path) as db:
        with db.write() as session:
            add(session, "c-00000031", "present", "converging")
            add(session, "c-00000032", "present", "creating")
        record_failure(db, "c-00000031", "lab", OSError("mail to ann@example.org failed"), permanent=False)
        record_failure(db, "c-00000032", "lab", MissingPrerequisite("install the Pulumi CLI"), permanent=True)
        record_failure(db, "c-0000009999", "lab", MissingPrerequisite("nobody"), permanent=True)  # erased: ignored
        with db.read() as session:
            transient, permanent = session.get(Server, "c-00000031"), session.get(Server, "c-00000032")
            assert (transient.state, transient.error) == ("converging", "OSError")
            assert (permanent.state, permanent.error) == ("failed", "install the Pulumi CLI")
            assert session.get(Server, "c-0000009999") is None
        result = sweep(db, load_settings(database_url=db.url), Listing({"c-00000031", "c-00000032"}))
        assert (result.drifted, result.failed) == (["c-00000031"], ["c-00000032"])
        assert failed(db) == ["c-00000032"]
