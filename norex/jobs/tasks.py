"""The huey tasks: converge one customer (serialised per customer, retried with backoff) and the sweep.

Importing this module loads the settings and builds the queue; `norex serve` imports it only to
enqueue, `norex worker` to run the consumer.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import secrets
import sys
from dataclasses import dataclass

from huey import crontab
from huey.exceptions import TaskLockedException

from norex.audit import continuous
from norex.db.database import Database, connect
from norex.errors import is_transient
from norex.jobs import reconcile
from norex.jobs.queue import huey
from norex.provision import Provisioner, control_plane_id, get_provisioner
from norex.settings import Settings, load_settings

H = huey()

# A converge takes about a minute; a lock older than this belongs to a worker that died.
LOCK_TTL_SECONDS = 1800
MAX_ATTEMPTS = 6
LOCKED_RETRY_SECONDS = 5
# Test-only fault injection: the worker process exits at this step (create, converge, destroy, erase),
# as a crash would. Unset in production.
FAILPOINT = "NOREX_FAILPOINT"


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    db: Database
    provisioner: Provisioner


@functools.cache
def runtime() -> Runtime:
    settings = load_settings()
    return Runtime(
        settings,
        connect(settings.database_url),
        get_provisioner(settings.backend, control_plane_id(settings.database_url), lab_image=settings.lab_image),
    )


class RedisLock:
    """A per-customer lock on a shared Redis queue that expires: a dead machine's lock must not block a
    customer for ever. (huey's own lock needs hash-field expiry, which Debian's Redis 7.0 lacks.)"""

    RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

    def __init__(self, conn, name: str, ttl: int) -> None:
        self.conn, self.key, self.ttl = conn, f"norex.lock.{name}", ttl
        self.token = secrets.token_hex(16)

    def __enter__(self) -> RedisLock:
        if not self.conn.set(self.key, self.token, nx=True, ex=self.ttl):
            raise TaskLockedException(self.key)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.conn.eval(self.RELEASE, 1, self.key, self.token)


def customer_lock(customer_id: str):
    """Never two operations on one customer's server at once, whichever worker machine runs them.

    Embedded (SQLite) queue: huey's lock; `norex worker` drops stale ones when it starts.
    """
    from huey import RedisHuey

    name = f"customer-{customer_id}"
    if isinstance(H, RedisHuey):
        return RedisLock(H.storage.conn, name, LOCK_TTL_SECONDS)
    return H.lock_task(name)


def backoff(attempt: int) -> int:
    """Seconds before retry number attempt+1: 10, 20, 40 ... capped at 10 minutes."""
    return min(600, 10 * 2**attempt)


def _failpoint(step: str) -> None:
    if os.environ.get(FAILPOINT) == step:
        os._exit(70)


@H.task()
def converge(customer_id: str, attempt: int = 0, force: bool = False, retry: bool = True) -> str:
    """Converge one customer's server; a second worker waiting on the same customer tries again later.

    force: run site.yml even when the server is ready (its devices changed, a roll-out).
    retry: retry a transient failure with backoff (a roll-out counts a failure at once instead).
    """
    rt = runtime()
    try:
        with customer_lock(customer_id):
            try:
                step = reconcile.converge_customer(
                    rt.db, rt.settings, rt.provisioner, customer_id, force=force, hook=_failpoint
                )
            except Exception as exc:
                permanent = not is_transient(exc)
                reconcile.record_failure(rt.db, customer_id, rt.provisioner.name, exc, permanent=permanent)
                if not permanent:
                    raise
                # No retry can fix it: ops see the reason in `norex customers list`, and here, once.
                print(f"norex: worker: {customer_id}: failed, not retried: {exc}", file=sys.stderr, flush=True)
                return "failed"
    except TaskLockedException:
        converge.schedule(args=(customer_id, attempt, force, retry), delay=LOCKED_RETRY_SECONDS)
        return "locked"
    except Exception:
        if retry and attempt + 1 < MAX_ATTEMPTS:
            converge.schedule(args=(customer_id, attempt + 1, force), delay=backoff(attempt))
        raise  # the sweep picks it up after the last attempt
    if step.action in ("created", "converged"):
        audit(customer_id, drift=False)  # what the converge made, checked at once
    return step.action


@H.task()
def apply_devices(customer_id: str) -> str:
    """What the dashboard queues after a device change: the customer's whole peer set to their server's agent,
    or, where the agent cannot take it, a converge that applies the same set."""
    from norex.agent import fleet

    rt = runtime()
    if fleet.push_peers(rt.db, rt.settings, customer_id):
        return "pushed"
    converge(customer_id, force=True)
    return "converge queued"


@H.task()
def audit(customer_id: str, drift: bool = True) -> str:
    """Audit one ready server and keep only its latest verdict. A first failure is re-converged (and that
    converge audits it again); a second is reported to ops: one line on stderr naming the checks."""
    rt = runtime()
    try:
        with customer_lock(customer_id):
            outcome = continuous.audit_customer(rt.db, rt.settings, rt.provisioner, customer_id, drift=drift)
    except TaskLockedException:
        audit.schedule(args=(customer_id, drift), delay=LOCKED_RETRY_SECONDS)
        return "locked"
    if outcome.reconverge:
        converge(customer_id, force=True)
    elif outcome.report:
        checks = ", ".join(outcome.failed)
        print(f"norex: worker: audit: {customer_id}: fails again after a re-converge: {checks}", file=sys.stderr)
    return outcome.verdict


def enqueue(customer_id: str) -> None:
    """What the webhook calls after recording a desired state."""
    converge(customer_id)


def run_sweep(converge_all: bool = False, retry_failed: bool = False) -> reconcile.Sweep:
    """Queue work for every drifted customer and orphan; with converge_all, also re-converge every
    server that should exist (a new blocklist, changed roles), failed ones included; with retry_failed,
    retry the jobs that failed for good (after ops fixed the cause)."""
    rt = runtime()
    result = reconcile.sweep(rt.db, rt.settings, rt.provisioner)
    for customer_id in (*result.drifted, *result.orphans):
        converge(customer_id)
    queued = set(result.drifted)
    if retry_failed:
        for customer_id in result.failed:
            converge(customer_id, force=True)
        queued |= set(result.failed)
    if converge_all:
        for customer_id in reconcile.settled_present(rt.db, exclude=queued):
            converge(customer_id, force=True)
    audits = tuple(c for c in continuous.claim_due(rt.db, rt.settings.audit_interval) if c not in queued)
    for customer_id in audits:
        audit(customer_id)
    return dataclasses.replace(result, audits=audits)


@H.task()
def sweep_now() -> int:
    return len(run_sweep().drifted)


@H.periodic_task(crontab(minute="*"))
def periodic_sweep() -> int:
    return len(run_sweep().drifted)
