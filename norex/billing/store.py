"""Apply the core's decisions to the database, one event per transaction.

Callers own the transaction (`Database.write()`); these functions only stage changes in it, so an event,
its id and its effect commit together or not at all. Customers are locked for the decision (FOR UPDATE on
PostgreSQL; SQLite write transactions are serialised anyway), and rows are created with ON CONFLICT DO
NOTHING so two deliveries racing on two connections never raise (a failed INSERT would also put the
values in PostgreSQL's log). Personal data that changes or goes away is scrubbed from SQLite's WAL after
the commit.

The worker's side of the contract: it inserts a `servers` row before it asks a backend for a machine, and
erases a customer marked `erase_requested` once the server is destroyed (`erase_customer`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from sqlalchemy import bindparam, delete, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from norex.billing import core
from norex.db.database import scrub_after_commit
from norex.db.models import Customer, ErasedCustomer, FailedEvent, ProcessedEvent, Server, new_customer_id
from norex.settings import WEEK

RETENTION_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class Outcome:
    """What happened to an event. `customer_id` (opaque) is set when the worker should look at the customer."""

    result: Literal["duplicate", "ignored", "applied"]
    customer_id: str | None = None
    reason: str | None = None


CUSTOMERS = Customer.__table__
STATE_COLUMNS = [CUSTOMERS.c.id, *(CUSTOMERS.c[f.name] for f in fields(core.CustomerState))]


def _dialect(session: Session) -> Any:
    return postgresql if session.get_bind().dialect.name == "postgresql" else sqlite


@functools.cache
def _statements(dialect: Any) -> dict[str, Any]:
    """The webhook's hot path, built once per dialect on Core tables: no ORM unit of work and no statement
    construction per event (it showed up as most of the cost of an event in profiles)."""
    return {
        "event": dialect.insert(ProcessedEvent.__table__)
        .on_conflict_do_nothing()
        .returning(ProcessedEvent.__table__.c.event_id),
        "customer": select(*STATE_COLUMNS)
        .where(CUSTOMERS.c.stripe_customer_id == bindparam("stripe_customer_id"))
        .with_for_update(),
        "erased": select(exists().where(ErasedCustomer.__table__.c.digest == bindparam("digest"))),
        "tombstone": dialect.insert(ErasedCustomer.__table__).on_conflict_do_nothing(),
        "create": dialect.insert(CUSTOMERS)
        .on_conflict_do_nothing(index_elements=["stripe_customer_id"])
        .returning(CUSTOMERS.c.id),
    }


def _state(row: Any) -> core.CustomerState:
    return core.CustomerState(**{f.name: getattr(row, f.name) for f in fields(core.CustomerState)})


def _tombstone(session: Session, stripe_customer_id: str, now: int) -> None:
    digest = core.tombstone_digest(stripe_customer_id)
    session.execute(_statements(_dialect(session))["tombstone"], {"digest": digest, "erased_at": now})


class Unstorable(ValueError):
    """A value longer than its column: what PostgreSQL would refuse, refused the same way on every database."""


def _check_fits(table: Any, values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        length = getattr(table.c[name].type, "length", None)
        if isinstance(value, str) and length is not None and len(value) > length:
            raise Unstorable(f"{table.name}.{name} holds at most {length} characters")


def _update(session: Session, customer_id: str, state: core.CustomerState, changes: Mapping[str, Any]) -> None:
    if not changes:
        return
    _check_fits(CUSTOMERS, changes)
    if "email" in changes and state.email is not None and changes["email"] != state.email:
        scrub_after_commit(session)
    session.execute(update(CUSTOMERS).where(CUSTOMERS.c.id == customer_id).values(**changes))


def apply_event(session: Session, event: Mapping[str, Any], now: int, *, grace_seconds: int = WEEK) -> Outcome:
    """Record a verified event and its effect in the session's transaction; a redelivered event is a no-op."""
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        return Outcome("ignored", reason="event without an id")
    sql = _statements(_dialect(session))
    _check_fits(ProcessedEvent.__table__, {"event_id": event_id})
    if session.execute(sql["event"], {"event_id": event_id, "received_at": now}).scalar_one_or_none() is None:
        return Outcome("duplicate")

    stripe_customer_id = core.stripe_customer_of(event)
    if stripe_customer_id is None:
        return Outcome("ignored", reason=core.decide(event, None, now=now, grace_seconds=grace_seconds).ignore)
    digest = core.tombstone_digest(stripe_customer_id)
    for _ in range(3):  # more than one pass only when another connection creates the same customer meanwhile
        row = session.execute(sql["customer"], {"stripe_customer_id": stripe_customer_id}).one_or_none()
        # A stored customer carries its own erasure flag; only an unknown one needs the tombstone lookup.
        erased = row is None and bool(session.execute(sql["erased"], {"digest": digest}).scalar())
        state = _state(row) if row is not None else None
        decision = core.decide(event, state, now=now, grace_seconds=grace_seconds, erased=erased)
        if decision.ignore is not None:
            return Outcome("ignored", reason=decision.ignore)
        if decision.erase:
            return _erase_requested(
                session, row.id if row is not None else None, state, stripe_customer_id, decision, now
            )
        if row is not None and state is not None:
            _update(session, row.id, state, decision.changes)
            return Outcome("applied", row.id if decision.enqueue else None)
        values = {c.name: None for c in CUSTOMERS.columns}
        values |= {
            "id": new_customer_id(),
            "stripe_customer_id": stripe_customer_id,
            "desired": "absent",
            "erase_requested": False,
            "cancel_at_period_end": False,
            "created_at": now,
            **decision.changes,
        }
        _check_fits(CUSTOMERS, values)
        created = session.execute(sql["create"], values).scalar_one_or_none()
        if created is not None:
            return Outcome("applied", created if decision.enqueue else None)
    raise RuntimeError("customer row kept changing under this transaction")


_EVENT_TYPE = re.compile(r"[a-z0-9_.]{1,64}")


def event_type_label(kind: Any) -> str:
    """An event's type fit to count and show: Stripe's own names, anything else as `other`."""
    return kind if isinstance(kind, str) and _EVENT_TYPE.fullmatch(kind) else "other"


def record_failed_event(session: Session, kind: Any, error: str, now: int) -> None:
    """Count an event that cannot be stored, by type: never its id or content (both name a customer)."""
    table = FailedEvent.__table__
    insert = (
        _dialect(session)
        .insert(table)
        .values(event_type=event_type_label(kind), count=1, error=error[:64], last_failed_at=now)
    )
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["event_type"],
            set_={"count": table.c.count + 1, "error": insert.excluded.error, "last_failed_at": now},
        )
    )


def failed_events(session: Session) -> dict[str, dict[str, Any]]:
    """{event type: {count, error, last_failed_at}} of the events that could not be stored."""
    rows = session.scalars(select(FailedEvent).order_by(FailedEvent.event_type)).all()
    return {r.event_type: {"count": r.count, "error": r.error, "last_failed_at": r.last_failed_at} for r in rows}


def _erase_requested(
    session: Session,
    customer_id: str | None,
    state: core.CustomerState | None,
    stripe_customer_id: str,
    decision: core.Decision,
    now: int,
) -> Outcome:
    """customer.deleted: erase at once when no server exists, else clear the email and leave the rest to the worker."""
    _tombstone(session, stripe_customer_id, now)
    if customer_id is None or state is None:
        return Outcome("applied")
    if session.scalar(select(exists().where(Server.customer_id == customer_id))):
        _update(session, customer_id, state, decision.changes)
        scrub_after_commit(session)
    else:
        erase_customer(session, customer_id, now)
    return Outcome("applied", customer_id)


def apply_subscription(
    session: Session, customer_id: str, subscription: Mapping[str, Any], now: int, *, grace_seconds: int = WEEK
) -> Outcome:
    """Apply a subscription re-fetched from the Stripe API to the customer (opaque id) it belongs to."""
    row = session.execute(select(*STATE_COLUMNS).where(CUSTOMERS.c.id == customer_id).with_for_update()).one_or_none()
    if row is None:
        return Outcome("ignored", reason="no such customer")
    state = _state(row)
    decision = core.decide_snapshot(subscription, state, now=now, grace_seconds=grace_seconds)
    if decision.ignore is not None:
        return Outcome("ignored", reason=decision.ignore)
    _update(session, customer_id, state, decision.changes)
    return Outcome("applied", customer_id if decision.enqueue else None)


def erase_customer(session: Session, customer_id: str, now: int) -> bool:
    """Delete everything about a customer, leaving only a tombstone digest; SQLite's WAL is scrubbed on commit."""
    query = select(CUSTOMERS.c.stripe_customer_id).where(CUSTOMERS.c.id == customer_id).with_for_update()
    stripe_customer_id = session.execute(query).scalar_one_or_none()
    if stripe_customer_id is None:
        return False
    _tombstone(session, stripe_customer_id, now)
    session.execute(delete(Server.__table__).where(Server.__table__.c.customer_id == customer_id))
    session.execute(delete(CUSTOMERS).where(CUSTOMERS.c.id == customer_id))
    scrub_after_commit(session)
    return True


def expire_grace(session: Session, now: int, *, grace_seconds: int = WEEK) -> list[str]:
    """Customers whose past_due grace ran out now want no server; returns their opaque ids to enqueue."""
    rows = session.scalars(
        select(Customer)
        .where(Customer.status == "past_due", Customer.desired == "present", Customer.erase_requested.is_(False))
        .with_for_update()
    ).all()
    expired = [r for r in rows if core.desired_for(r.status, r.status_since, now, grace_seconds) == "absent"]
    for row in expired:
        row.desired = "absent"
    session.flush()
    return [r.id for r in expired]


def prune_events(session: Session, now: int, *, max_age: int = RETENTION_SECONDS) -> int:
    """Forget event ids, tombstones and failure counts older than 30 days: Stripe stops retrying a delivery
    after 3, and keeps events for 30 (an event can be resent from its dashboard until then)."""
    cutoff = now - max_age
    events = session.execute(delete(ProcessedEvent).where(ProcessedEvent.received_at < cutoff)).rowcount
    tombstones = session.execute(delete(ErasedCustomer).where(ErasedCustomer.erased_at < cutoff)).rowcount
    failures = session.execute(delete(FailedEvent).where(FailedEvent.last_failed_at < cutoff)).rowcount
    return events + tombstones + failures


def prune_idle_customers(session: Session, now: int, *, max_age: int = RETENTION_SECONDS) -> int:
    """Forget customers who never subscribed within 30 days: their email has no purpose here."""
    idle = session.execute(
        delete(Customer).where(
            Customer.subscription_id.is_(None),
            Customer.created_at < now - max_age,
            ~exists().where(Server.customer_id == Customer.id),
        )
    ).rowcount
    if idle:
        scrub_after_commit(session)
    return idle


def prune(session: Session, now: int) -> int:
    """Everything past its retention; the worker's sweep and `norex serve` at start call this."""
    return prune_events(session, now) + prune_idle_customers(session, now)
