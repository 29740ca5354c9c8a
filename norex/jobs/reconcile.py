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

from norex import configure
from norex.billing import store
from norex.billing.stripe_api import refresh_customer
from norex.db.database import Database
from norex.db.models import Customer, Server
from norex.provision import Provisioner
from norex.settings import Settings

# Desired server states the worker treats as done.
SETTLED = "ready"


@dataclass
class Step:
    """What one converge did, for the caller's progress output (no personal data)."""

    customer_id: str
    action: str  # created | converged | destroyed | erased | nothing
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


def _now() -> int:
    return int(time.time())


def peers_for(db: Database, customer_id: str) -> list[dict[str, Any]]:
    """The customer's devices as WireGuard peers (public keys and tunnel addresses only)."""
    from norex.db.models import Device

    with db.read() as session:
        rows = session.scalars(select(Device).where(Device.customer_id == customer_id).order_by(Device.index)).all()
        return [{"public_key": d.public_key, "addresses": [d.ipv4 + "/32", d.ipv6 + "/128"]} for d in rows]


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
    extra_vars: dict[str, Any] | None = None,
    force: bool = False,
    hook: Callable[[str], None] | None = None,
) -> Step:
    """Bring one customer's server to its desired state. Call with the customer's lock held.

    hook(step) is called before each remote step (tests use it to kill the worker there).
    """
    started = time.monotonic()
    hook = hook or (lambda _step: None)
    refresh_customer(db, settings, customer_id)  # no-op without NOREX_STRIPE_API_KEY
    if settings.blocklist_file is not None:
        extra_vars = {"resolver_blocklist_file": str(settings.blocklist_file), **(extra_vars or {})}
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
        result = configure.converge(made, peers_for(db, customer_id), extra_vars)
        _set_server(db, customer_id, provisioner.name, state=SETTLED, public_key=result.public_key)
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


def settled_present(db: Database, exclude: set[str]) -> list[str]:
    """Customers who want a server, except those listed (already queued by the sweep)."""
    with db.read() as session:
        ids = session.scalars(select(Customer.id).where(Customer.desired == "present").order_by(Customer.id)).all()
    return [i for i in ids if i not in exclude]


@dataclass(frozen=True)
class Sweep:
    customers: int
    drifted: list[str]
    orphans: list[str]
    expired: list[str]
    pruned: int
    seconds: float


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
    drifted = []
    known = set()
    for customer_id, desired, erase, state in rows:
        known.add(customer_id)
        there = customer_id in existing
        settled = (state == SETTLED and there) if desired == "present" else (state is None and not there and not erase)
        if not settled:
            drifted.append(customer_id)
    orphans = sorted(existing - known)
    return Sweep(len(rows), drifted, orphans, expired, pruned, time.monotonic() - started)
