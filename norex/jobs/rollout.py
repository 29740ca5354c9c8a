"""Roll a new version (roles, playbooks, blocklist) out to the fleet: canaries first, then batches through the
queue, stopping at the first batch over its failure budget.

Resumable by construction: a server's row keeps the version of its last successful converge, so a rerun
converges only the servers not at the target yet; a server created meanwhile is converged with the checkout
of its worker, which is the target. Nothing here runs a converge itself: the workers do, from the queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select, update

from norex.db.database import Database
from norex.db.models import Customer, Server
from norex.jobs.reconcile import SETTLED

# A batch that has not finished in this long counts its unfinished servers as failed.
BATCH_TIMEOUT_SECONDS = 1800.0


@dataclass
class Batch:
    number: int
    servers: list[str]
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # customer id -> the one-line reason
    seconds: float = 0.0
    canary: bool = False


@dataclass
class Rollout:
    target: str
    batches: list[Batch] = field(default_factory=list)
    already: int = 0  # servers at the target before this run
    stopped: bool = False

    @property
    def done(self) -> int:
        return sum(len(b.done) for b in self.batches)

    @property
    def failed(self) -> dict[str, str]:
        return {cid: why for b in self.batches for cid, why in b.failed.items()}


def pending(db: Database, target: str) -> tuple[list[str], int]:
    """Servers that should exist and are not at the target version (oldest first), and how many are."""
    with db.read() as session:
        rows = session.execute(
            select(Server.customer_id, Server.version)
            .join(Customer, Customer.id == Server.customer_id)
            .where(Customer.desired == "present")
            .order_by(Server.updated_at, Server.customer_id)
        ).all()
    todo = [cid for cid, version in rows if version != target]
    return todo, len(rows) - len(todo)


def plan(servers: Sequence[str], canary: int, batch: int, canaries_needed: bool) -> list[list[str]]:
    """The batches, in order: the canaries (when no server proved the target yet), then groups of `batch`."""
    out: list[list[str]] = []
    rest = list(servers)
    if canaries_needed and canary > 0:
        out.append(rest[:canary])
        rest = rest[canary:]
    out += [rest[i : i + batch] for i in range(0, len(rest), batch)]
    return [b for b in out if b]


def _outcome(db: Database, customer_ids: list[str], target: str, since: int) -> dict[str, tuple[str, str | None]]:
    """Per server: done, failed (with why) or running, for the jobs enqueued at `since`."""
    with db.read() as session:
        rows = {s.customer_id: s for s in session.scalars(select(Server).where(Server.customer_id.in_(customer_ids)))}
    states: dict[str, tuple[str, str | None]] = {}
    for cid in customer_ids:
        server = rows.get(cid)
        if server is None:
            states[cid] = ("failed", "the server is gone (its customer no longer wants one)")
        elif server.error is not None:
            states[cid] = ("failed", server.error)
        elif server.state == SETTLED and server.version == target:
            states[cid] = ("done", None)
        elif server.state == SETTLED and server.version is not None and server.updated_at >= since:
            states[cid] = ("failed", f"converged version {server.version}: the worker runs another checkout")
        else:
            states[cid] = ("running", None)
    return states


def run(
    db: Database,
    target: str,
    enqueue: Callable[[str], None],
    *,
    canary: int = 1,
    batch: int = 10,
    max_failures: int = 0,
    progress: Callable[[Rollout, Batch, int, float], None] | None = None,
    poll: float = 1.0,
    timeout: float = BATCH_TIMEOUT_SECONDS,
) -> Rollout:
    """Roll `target` out: enqueue a batch, wait for it, go on unless its failures exceed `max_failures`."""
    todo, already = pending(db, target)
    rollout = Rollout(target, already=already)
    batches = plan(todo, canary, batch, canaries_needed=already == 0)
    started = time.monotonic()
    for number, members in enumerate(batches, 1):
        current = Batch(number, members, canary=number == 1 and already == 0 and canary > 0)
        rollout.batches.append(current)
        since = int(time.time())
        with db.write() as session:
            # A reason left by an earlier job is not this roll-out's.
            session.execute(update(Server).where(Server.customer_id.in_(members)).values(error=None))
        for cid in members:
            enqueue(cid)
        deadline = time.monotonic() + timeout
        batch_started = time.monotonic()
        while True:
            states = _outcome(db, members, target, since)
            if all(state != "running" for state, _ in states.values()) or time.monotonic() > deadline:
                break
            time.sleep(poll)
        current.done = [cid for cid in members if states[cid][0] == "done"]
        current.failed = {
            cid: (why or f"not finished within {timeout:g} s")
            for cid, (state, why) in states.items()
            if state != "done"
        }
        current.seconds = time.monotonic() - batch_started
        remaining = sum(len(b) for b in batches[number:])
        if progress is not None:
            progress(rollout, current, remaining, time.monotonic() - started)
        if len(current.failed) > max_failures:
            rollout.stopped = True
            break
    return rollout
