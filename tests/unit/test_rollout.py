"""norex rollout's logic on a real database: canaries, batches, the failure budget, resuming, servers made
meanwhile. The queue is replaced by a stand-in worker that records what a converge records."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from norex.db.models import Customer, Server
from norex.jobs import rollout
from tests.unit.control_support import BACKENDS, database

TARGET = "0123456789abcdef"


def add(db, cid: str, version: str | None = "old", desired: str = "present") -> None:
    now = int(time.time()) - 100
    with db.write() as session:
        session.add(Customer(id=cid, stripe_customer_id="cus_" + cid, desired=desired, created_at=now))
        session.add(Server(customer_id=cid, backend="lab", name=cid, state="ready", version=version, updated_at=now))


def worker(db, broken: set[str], version: str = TARGET) -> Callable[[str], None]:
    """Converges at once: the broken servers record an error, the others the version."""
    calls: list[str] = []

    def enqueue(cid: str) -> None:
        calls.append(cid)
        with db.write() as session:
            server = session.get(Server, cid)
            if cid in broken:
                server.error = "site.yml did not converge server x (unreachable or failed, exit 4)"
            else:
                server.version, server.state, server.updated_at = version, "ready", int(time.time())

    enqueue.calls = calls  # type: ignore[attr-defined]
    return enqueue


def test_plan_canaries_then_batches() -> None:
    assert rollout.plan(list("abcdefg"), 2, 3, canaries_needed=True) == [["a", "b"], ["c", "d", "e"], ["f", "g"]]
    assert rollout.plan(list("abcde"), 2, 3, canaries_needed=False) == [["a", "b", "c"], ["d", "e"]]
    assert rollout.plan([], 1, 3, canaries_needed=True) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failing_canary_stops_the_rollout_and_a_rerun_after_repair_finishes(backend, tmp_path) -> None:
    with database(backend, tmp_path) as db:
        for n in range(1, 6):
            add(db, f"c-0000000{n}")
        add(db, "c-00000009", desired="absent")  # going away: not rolled out
        first_id = rollout.pending(db, TARGET)[0][0]
        seen = []
        result = rollout.run(
            db, TARGET, worker(db, broken={first_id}), canary=1, batch=2, progress=lambda *a: seen.append(a[1])
        )
        assert result.stopped and [b.servers for b in result.batches] == [[first_id]]
        assert result.failed == {first_id: "site.yml did not converge server x (unreachable or failed, exit 4)"}
        assert len(seen) == 1 and seen[0].canary
        assert len(rollout.pending(db, TARGET)[0]) == 5
        # Repaired: the rerun starts again with a canary (no server proved the version), then the rest.
        enqueue = worker(db, broken=set())
        again = rollout.run(db, TARGET, enqueue, canary=1, batch=2)
        assert not again.stopped and again.done == 5 and again.failed == {}
        assert [len(b.servers) for b in again.batches] == [1, 2, 2]
        assert "c-00000009" not in enqueue.calls
        assert rollout.pending(db, TARGET) == ([], 5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_stopped_rollout_resumes_where_it_stopped(backend, tmp_path) -> None:
    with database(backend, tmp_path) as db:
        for n in range(1, 8):
            add(db, f"c-0000000{n}")
        order = rollout.pending(db, TARGET)[0]
        result = rollout.run(db, TARGET, worker(db, broken={order[3]}), canary=1, batch=3, max_failures=0)
        assert result.stopped and result.done == 3 and list(result.failed) == [order[3]]
        add(db, "c-00000010", version=TARGET)  # made during the roll-out: converged with the new version
        enqueue = worker(db, broken=set())
        resumed = rollout.run(db, TARGET, enqueue, canary=1, batch=3)
        assert resumed.already == 4 and not resumed.batches[0].canary  # the version was proven already
        assert sorted(enqueue.calls) == sorted(order[3:]) and resumed.done == 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_failure_budget_and_a_worker_on_another_checkout(backend, tmp_path) -> None:
    with database(backend, tmp_path) as db:
        for n in range(1, 5):
            add(db, f"c-0000000{n}")
        order = rollout.pending(db, TARGET)[0]
        ok = rollout.run(db, TARGET, worker(db, broken={order[1]}), canary=0, batch=2, max_failures=1)
        assert not ok.stopped and ok.done == 3 and list(ok.failed) == [order[1]]
        elsewhere = rollout.run(db, TARGET, worker(db, broken=set(), version="ffffffffffffffff"), canary=0, batch=5)
        assert elsewhere.stopped and "the worker runs another checkout" in elsewhere.failed[order[1]]


def test_a_batch_that_never_finishes_counts_as_failed(tmp_path) -> None:
    with database("sqlite", tmp_path) as db:
        add(db, "c-00000001")
        result = rollout.run(db, TARGET, lambda cid: None, canary=1, batch=1, poll=0.05, timeout=0.2)
        assert result.stopped and result.failed == {"c-00000001": "not finished within 0.2 s"}
