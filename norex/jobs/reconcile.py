"""Make a customer's server be what the database says it should be, and find every customer that drifted.

Each step is recorded before it is taken (servers.state), and every backend call is idempotent, so a
worker killed at any point leaves a state the next run repairs: a half-made server is made again, a
half-destroyed one destroyed again. Nothing here logs a customer's email, addresses or keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from norex import converge
from norex.billing import store
from norex.billing.stripe_api import refresh_customer
from norex.blocklist import fleet
from norex.converge.version import converge_version
from norex.db.database import Database
from norex.db.models import Customer, Server
from norex.devices import store as devices
from norex.errors import NorexError
from norex.provision.interface import Provisioner
from norex.settings import Settings

# Desired server states the worker treats as done.
SETTLED = "ready"
# A job failed for a reason a retry cannot fix (bad input, a missing prerequisite, a stale lock): the sweep
# leaves the server alone until ops retry it (`norex reconcile --retry-failed`) or its desired state changes.
FAILED = "failed"
# The longest error kept (one line: a NorexError's message, or an exception's class name).
ERROR_CHARS = 1024


@dataclass
class Step:
    """What one converge did, for the caller's progress output (no personal data)."""

    customer_id: str
    action: str  # created | converged | destroyed | erased | nothing
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


def _now() -> int:
    return int(time.time())


def _set_server(db: Database, customer_id: str, backend: str, **fields: Any) -> None:
    with db.write() as session:
        row = session.get(Server, customer_id, with_for_update=True)
        if row is None:
            row = Server(customer_id=customer_id, backend=backend, name=customer_id, updated_at=_now())
            session.add(row)
        for key, value in fields.items():
            setattr(row, key, value)
        row.updated_at = _now()


def converge_customer(
    db: Database,
    settings: Settings,
    provisioner: Provisioner,
    customer_id: str,
    *,
    force: bool = False,
    hook: Callable[[str], None] | None = None,
) -> Step:
    """Bring one customer's server to its desired state. Call with the customer's lock held.

    hook(step) is called before each remote step (tests use it to kill the worker there).
    """
    started = time.monotonic()
    hook = hook or (lambda _step: None)
    refresh_customer(db, settings, customer_id)  # no-op without NOREX_STRIPE_API_KEY
    with db.read() as session:
        customer = session.get(Customer, customer_id)
        server = session.get(Server, customer_id)
        desired = customer.desired if customer is not None else "absent"
        erase = customer.erase_requested if customer is not None else False
        state = server.state if server is not None else None
    if desired == "present":
        if state == SETTLED and not force and provisioner.find(customer_id) is not None:
            return Step(customer_id, "nothing")
        _set_server(db, customer_id, provisioner.name, state="creating")
        hook("create")
        made = provisioner.create(customer_id)
        _set_server(
            db, customer_id, provisioner.name, state="converging", name=made.name, ipv4=made.ipv4, ipv6=made.ipv6
        )
        hook("converge")
        fleet.ensure(settings, provisioner.blocklist_mirror)
        version = converge_version(settings)
        result = converge.converge(made, settings, devices.peers(db, customer_id))
        _set_server(
            db,
            customer_id,
            provisioner.name,
            state=SETTLED,
            public_key=result.public_key,
            agent_pin=result.agent_pin,
            error=None,
            version=version,
        )
        action = "created" if state != SETTLED else "converged"
        return Step(customer_id, action, time.monotonic() - started, {"changed": result.changed})
    # Absent: destroy whatever exists (a row, a server, or a server without a row: an orphan).
    action = "nothing"
    if server is not None or provisioner.find(customer_id) is not None:
        if server is not None:
            _set_server(db, customer_id, provisioner.name, state="destroying")
        hook("destroy")
        provisioner.destroy(customer_id)
        with db.write() as session:
            row = session.get(Server, customer_id, with_for_update=True)
            if row is not None:
                session.delete(row)
        action = "destroyed"
    if erase:
        hook("erase")
        with db.write() as session:
            store.erase_customer(session, customer_id, _now())
        action = "erased"
    return Step(customer_id, action, time.monotonic() - started)


def record_failure(db: Database, customer_id: str, backend: str, exc: BaseException, *, permanent: bool) -> None:
    """Keep the latest error of the customer's job (a current value, replaced by the next run, cleared when a
    converge succeeds) where `norex customers list` shows it. Only our own one-line messages are kept: any
    other exception is named by its class, since its text may carry data."""
    message = str(exc).splitlines()[0] if isinstance(exc, NorexError) and str(exc) else type(exc).__name__
    fields: dict[str, Any] = {"error": message[:ERROR_CHARS]}
    if permanent:
        fields["state"] = FAILED
    with db.write() as session:
        if session.get(Customer, customer_id) is None:
            return  # erased meanwhile: nothing to report on
    _set_server(db, customer_id, backend, **fields)


def failed(db: Database) -> list[str]:
    """Customers whose last job failed for good (they wait for ops)."""
    with db.read() as session:
        return list(
            session.scalars(select(Server.customer_id).where(Server.state == FAILED).order_by(Server.customer_id))
        )


def settled_present(db: Database, exclude: set[str]) -> list[str]:
    """Customers who want a server, except those listed (already queued by the sweep)."""
    with db.read() as session:
        ids = session.scalars(select(Customer.id).where(Customer.desired == "present").order_by(Customer.id)).all()
    return [i for i in ids if i not in exclude]


@dataclass(frozen=True)
class Sweep:
    customers: int
    drifted: list[str]
    failed: list[str]
    orphans: list[str]
    expired: list[str]
    pruned: int
    seconds: float
    audits: tuple[str, ...] = ()  # ready servers whose scheduled audit was queued (norex.audit.continuous)


def sweep(db: Database, settings: Settings, provisioner: Provisioner, now: int | None = None) -> Sweep:
    """Every customer whose server is not in its desired state, plus servers nobody owns.

    One query and one backend listing: no remote call per customer (the worker converges the drifted ones).
    """
    started = time.monotonic()
    now = _now() if now is None else now
    with db.write() as session:
        expired = store.expire_grace(session, now, grace_seconds=settings.past_due_grace_seconds)
        pruned = store.prune(session, now)
    existing = provisioner.existing()
    with db.read() as session:
        rows = session.execute(
            select(Customer.id, Customer.desired, Customer.erase_requested, Server.state).outerjoin(
                Server, Server.customer_id == Customer.id
            )
        ).all()
    drifted, stuck = [], []
    known = set()
    for customer_id, desired, erase, state in rows:
        known.add(customer_id)
        if state == FAILED:
            stuck.append(customer_id)
            continue
        there = customer_id in existing
        settled = (state == SETTLED and there) if desired == "present" else (state is None and not there and not erase)
        if not settled:
            drifted.append(customer_id)
    orphans = sorted(existing - known)
    return Sweep(len(rows), drifted, sorted(stuck), orphans, expired, pruned, time.monotonic() - started)
