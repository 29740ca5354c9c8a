"""What a Stripe event means for a customer: a pure function of the event and of what we already know.

No I/O here (no Stripe client, no database, no clock): the store loads the state, calls `decide`, and
writes the decision. Everything Stripe does not promise is handled here:

- Order. Events arrive in any order. The customer's current subscription remembers the `created` time of
  the last event applied; an older one is ignored. Several events often share one second (`created` has second
  resolution); between two of the same second, the one further along the lifecycle wins (RANK).
- Terminal states. `canceled` and `incomplete_expired` are final for a subscription id (Stripe never
  revives one), so they are applied whenever they arrive and nothing about that subscription is applied
  after them: a late `active` can never bring a server back.
- Several subscriptions. A customer has one current subscription. An event for another one replaces it
  when it is not older than the newest subscription event seen for the customer, and either keeps a
  server or the current one does not: a new subscription takes over, and the end of an old or abandoned
  one does not destroy the server the current one pays for (its time is still remembered, so an older
  event of that ended subscription cannot take over later). Exact only for subscriptions that follow
  one another; two overlapping paid subscriptions delivered badly out of order need the API re-check.
- Inference without the API. `invoice.paid` for a `past_due` subscription sets it `active` (Stripe does the
  same); nothing else is inferred from invoices. Both invoice events ask the worker to re-check the
  subscription, which it does with the Stripe API when NOREX_STRIPE_API_KEY is set.
- `customer.created`/`customer.updated` create the row (no server) so the email is known whichever event
  comes first; a customer who never subscribes is pruned after 30 days by the store.
- `customer.deleted` erases the customer: at once if there is no server, after the destroy otherwise, with
  the email cleared right away. A tombstone (a digest, kept 30 days) makes later events for it no-ops.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

ACTIVE = frozenset({"active", "trialing"})
# Statuses that keep a server: past_due only for the grace period.
LIVE = ACTIVE | {"past_due"}
TERMINAL = frozenset({"canceled", "incomplete_expired"})
KNOWN_STATUSES = LIVE | TERMINAL | {"incomplete", "unpaid", "paused"}
# Lifecycle order, used only to break ties between events of the same second.
RANK = {
    "incomplete": 0,
    "trialing": 1,
    "active": 2,
    "past_due": 3,
    "unpaid": 4,
    "paused": 5,
    "canceled": 9,
    "incomplete_expired": 9,
}

CUSTOMER_EVENTS = frozenset({"customer.created", "customer.updated"})
SUBSCRIPTION_EVENTS = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        # Pausing (payment collection paused, or a trial ended without a payment method) takes the server
        # away; resuming brings it back. Both carry the subscription as it then is.
        "customer.subscription.paused",
        "customer.subscription.resumed",
    }
)
INVOICE_EVENTS = frozenset({"invoice.paid", "invoice.payment_failed"})
HANDLED = CUSTOMER_EVENTS | SUBSCRIPTION_EVENTS | INVOICE_EVENTS | {"checkout.session.completed", "customer.deleted"}

# Customer fields a decision may set.
FIELDS = frozenset(
    {
        "email",
        "subscription_id",
        "status",
        "status_since",
        "period_end",
        "last_event_created",
        "newest_event_created",
        "email_event_created",
        "desired",
        "erase_requested",
        "ended_subscription_id",
        "cancel_at_period_end",
    }
)


@dataclass(frozen=True)
class CustomerState:
    """What the store knows about a customer: the only input of `decide` besides the event."""

    stripe_customer_id: str
    email: str | None = None
    subscription_id: str | None = None
    status: str | None = None
    status_since: int | None = None
    period_end: int | None = None
    last_event_created: int | None = None
    newest_event_created: int | None = None
    email_event_created: int | None = None
    desired: str = "absent"
    erase_requested: bool = False
    # The last other subscription seen to end while the current one kept the server: its own late or
    # same-second events must never take over (Stripe never revives an ended subscription).
    ended_subscription_id: str | None = None
    cancel_at_period_end: bool = False


@dataclass(frozen=True)
class Decision:
    """The meaning of one event. `ignore` says why nothing changes; otherwise `changes` are written
    (creating the customer row if missing), `erase` erases the customer, and `enqueue` asks the worker
    to look at the customer (converge, re-check with Stripe, destroy and erase)."""

    stripe_customer_id: str | None
    ignore: str | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)
    erase: bool = False
    enqueue: bool = False


def tombstone_digest(stripe_customer_id: str) -> str:
    """How an erased customer is remembered for 30 days: not the Stripe id itself."""
    return hashlib.sha256(stripe_customer_id.encode()).hexdigest()


def desired_for(status: str | None, status_since: int | None, now: int, grace_seconds: int) -> str:
    """present or absent, for a subscription status at time `now`."""
    if status in ACTIVE:
        return "present"
    if status == "past_due":
        since = now if status_since is None else status_since
        return "present" if now < since + grace_seconds else "absent"
    return "absent"


def _id(value: Any) -> str | None:
    """A Stripe reference: an id string, or an expanded object carrying one."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _object(event: Mapping[str, Any]) -> Mapping[str, Any] | None:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    return obj if isinstance(obj, Mapping) else None


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def stripe_customer_of(event: Mapping[str, Any]) -> str | None:
    """The Stripe customer a handled event is about, or None (the store loads that customer's state)."""
    kind = event.get("type")
    obj = _object(event)
    if obj is None or not isinstance(kind, str) or kind not in HANDLED:
        return None
    if kind in CUSTOMER_EVENTS or kind == "customer.deleted":
        return _id(obj.get("id"))
    return _id(obj.get("customer"))


def ends_at_period_end(subscription: Mapping[str, Any]) -> bool:
    """Cancelled but not over: `cancel_at_period_end`, or (newer API versions) a `cancel_at` time set."""
    return subscription.get("cancel_at_period_end") is True or _int(subscription.get("cancel_at")) is not None


def period_end_of(subscription: Mapping[str, Any]) -> int | None:
    """current_period_end, on the subscription (older API versions) or on its items (newer ones)."""
    top = _int(subscription.get("current_period_end"))
    if top is not None:
        return top
    items = _get(subscription, "items", "data")
    ends = (
        [_int(i.get("current_period_end")) for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []
    )
    known = [e for e in ends if e is not None]
    return max(known) if known else None


def invoice_subscription_of(invoice: Mapping[str, Any]) -> str | None:
    """The invoice's subscription: a top-level field before API version 2025-03-31, under `parent` after."""
    return _id(invoice.get("subscription")) or _id(_get(invoice, "parent", "subscription_details", "subscription"))


def decide(
    event: Mapping[str, Any],
    state: CustomerState | None,
    *,
    now: int,
    grace_seconds: int,
    erased: bool = False,
) -> Decision:
    """The decision for one verified event. `state` is the stored customer (None if unknown); `erased` says a
    tombstone exists for the event's customer. Total: any dict gives a Decision, never an exception."""
    kind = event.get("type")
    customer = stripe_customer_of(event)
    created = _int(event.get("created"))
    obj = _object(event)

    def ignore(reason: str) -> Decision:
        return Decision(customer, ignore=reason)

    if not isinstance(kind, str) or kind not in HANDLED:
        return ignore("event type not handled")
    if obj is None or created is None:
        return ignore("event without an object or a created time")
    if customer is None:
        return ignore("event without a customer")
    if erased or (state is not None and state.erase_requested):
        return ignore("customer erased")
    if state is not None and state.stripe_customer_id != customer:
        return ignore("state of another customer")

    if kind in CUSTOMER_EVENTS:
        return _customer(customer, obj, created, state)
    if kind == "checkout.session.completed":
        return _checkout(customer, obj, created, state)
    if kind in SUBSCRIPTION_EVENTS:
        status = obj.get("status") if isinstance(obj.get("status"), str) else None
        if kind == "customer.subscription.deleted" and status not in TERMINAL:
            status = "canceled"
        if kind == "customer.subscription.paused" and status is None:
            status = "paused"
        subscription = _id(obj.get("id"))
        if subscription is None or status is None:
            return ignore("subscription without an id or a status")
        return _status(
            customer,
            state,
            subscription,
            status,
            created,
            period_end_of(obj),
            now,
            grace_seconds,
            resumed=kind == "customer.subscription.resumed",
            ending=ends_at_period_end(obj),
        )
    if kind in INVOICE_EVENTS:
        return _invoice(customer, kind, obj, created, state, now, grace_seconds)
    return _deleted(customer, state)


def decide_snapshot(subscription: Mapping[str, Any], state: CustomerState, *, now: int, grace_seconds: int) -> Decision:
    """The decision for a subscription re-fetched from the Stripe API: the truth at `now`, so it wins over any
    event already applied (only a terminal status stays terminal)."""
    sub_id = _id(subscription.get("id"))
    status = subscription.get("status")
    if state.erase_requested:
        return Decision(state.stripe_customer_id, ignore="customer erased")
    if sub_id is None or sub_id != state.subscription_id or not isinstance(status, str):
        return Decision(state.stripe_customer_id, ignore="not the customer's current subscription")
    created = max(now, state.last_event_created or 0)
    return _status(
        state.stripe_customer_id,
        state,
        sub_id,
        status,
        created,
        period_end_of(subscription),
        now,
        grace_seconds,
        authoritative=True,
        ending=ends_at_period_end(subscription),
    )


def _email_changes(email: Any, created: int, state: CustomerState | None) -> dict[str, Any]:
    if email is not None and not isinstance(email, str):
        return {}
    if state is not None and state.email_event_created is not None and created < state.email_event_created:
        return {}
    if state is not None and state.email == email:
        return {}
    return {"email": email, "email_event_created": created}


def _customer(customer: str, obj: Mapping[str, Any], created: int, state: CustomerState | None) -> Decision:
    if obj.get("deleted") is True:
        return Decision(customer, ignore="customer object marked deleted")
    changes = _email_changes(obj.get("email"), created, state)
    if state is None:
        return Decision(customer, changes=changes)
    if not changes:
        return Decision(customer, ignore="email unchanged or older than the one stored")
    return Decision(customer, changes=changes)


def _checkout(customer: str, obj: Mapping[str, Any], created: int, state: CustomerState | None) -> Decision:
    if obj.get("mode") != "subscription":
        return Decision(customer, ignore="checkout not for a subscription")
    email = _get(obj, "customer_details", "email") or obj.get("customer_email")
    changes = _email_changes(email, created, state) if email else {}
    subscription = _id(obj.get("subscription"))
    linked = False
    if subscription is not None and (state is None or state.subscription_id is None):
        # Its status comes with the subscription events (or the worker's re-check); link it meanwhile.
        changes["subscription_id"] = subscription
        linked = True
    if state is None:
        return Decision(customer, changes=changes, enqueue=linked)
    if not changes:
        return Decision(customer, ignore="nothing new in this checkout")
    return Decision(customer, changes=changes, enqueue=linked)


def _status(
    customer: str,
    state: CustomerState | None,
    subscription: str,
    status: str,
    created: int,
    period_end: int | None,
    now: int,
    grace_seconds: int,
    *,
    authoritative: bool = False,
    resumed: bool = False,
    ending: bool = False,
) -> Decision:
    if status not in KNOWN_STATUSES:
        return Decision(customer, ignore="unknown subscription status")
    if state is not None and subscription == state.ended_subscription_id != state.subscription_id:
        return Decision(customer, ignore="subscription already ended")
    last = state.last_event_created if state is not None else None
    newest = max(created, state.newest_event_created or created) if state is not None else created
    since = created
    if state is not None and state.subscription_id == subscription:
        if state.status in TERMINAL:
            return Decision(customer, ignore="subscription already ended")
        if status not in TERMINAL and last is not None and not authoritative:
            if created < last:
                return Decision(customer, ignore="older than the last event applied")
            # A resume comes after the pause it ends, even within the same second.
            comes_after = resumed and state.status == "paused"
            if created == last and RANK[status] < RANK.get(state.status or "", -1) and not comes_after:
                return Decision(customer, ignore="same second, earlier in the lifecycle")
        if status == state.status and state.status_since is not None:
            since = state.status_since
        last = created if last is None else max(last, created)
    elif state is not None and state.subscription_id is not None:
        if created < max(last or created, state.newest_event_created or created):
            return Decision(customer, ignore="older than the newest subscription event")
        if status not in LIVE and state.status in LIVE:
            # Not applied, but remembered: an older event of that subscription must not take over later,
            # nor, once it ended, any event of it at all.
            remember = {"newest_event_created": newest}
            if status in TERMINAL:
                remember["ended_subscription_id"] = subscription
            remember = {k: v for k, v in remember.items() if getattr(state, k) != v}
            if not remember:
                return Decision(customer, ignore="another subscription; the current one keeps the server")
            return Decision(customer, changes=remember)
        last = created
    else:
        last = created
    target = {
        "subscription_id": subscription,
        "status": status,
        "status_since": since,
        "period_end": period_end,
        "last_event_created": last,
        "newest_event_created": newest,
        "desired": desired_for(status, since, now, grace_seconds),
        "cancel_at_period_end": ending and status not in TERMINAL,
    }
    if state is None:
        return Decision(customer, changes=target, enqueue=True)
    changes = {k: v for k, v in target.items() if getattr(state, k) != v}
    if not changes:
        return Decision(customer, ignore="no change")
    # The worker needs to act when what should exist may have changed; a bare period or time bump is only noted.
    enqueue = bool(changes.keys() & {"subscription_id", "status", "desired"}) or authoritative
    return Decision(customer, changes=changes, enqueue=enqueue)


def _invoice(
    customer: str,
    kind: str,
    obj: Mapping[str, Any],
    created: int,
    state: CustomerState | None,
    now: int,
    grace_seconds: int,
) -> Decision:
    subscription = invoice_subscription_of(obj)
    if subscription is None:
        return Decision(customer, ignore="invoice not for a subscription")
    if state is None or state.subscription_id is None:
        # We never heard of the subscription: link it so the worker's re-check (with an API key) can act.
        return Decision(customer, changes={"subscription_id": subscription}, enqueue=True)
    if state.subscription_id != subscription:
        return Decision(customer, ignore="invoice of another subscription")
    if kind == "invoice.paid" and state.status == "past_due":
        paid = _status(customer, state, subscription, "active", created, state.period_end, now, grace_seconds)
        if paid.ignore is None:
            return paid
    return Decision(customer, enqueue=True)


def _deleted(customer: str, state: CustomerState | None) -> Decision:
    if state is None:
        return Decision(customer, erase=True)
    # The row stays (email cleared) only until the worker has destroyed the server.
    return Decision(
        customer, erase=True, changes={"email": None, "desired": "absent", "erase_requested": True}, enqueue=True
    )


def evolve(state: CustomerState | None, decision: Decision) -> CustomerState | None:
    """The state after a decision, as the store would leave it (None once erased). For tests and previews."""
    if decision.ignore is not None:
        return state
    if decision.erase:
        return None
    unknown = set(decision.changes) - FIELDS
    if unknown:
        raise ValueError(f"decision sets unknown fields {sorted(unknown)}")
    if state is None:
        if decision.stripe_customer_id is None:
            raise ValueError("a decision that creates a customer needs its Stripe id")
        state = CustomerState(stripe_customer_id=decision.stripe_customer_id)
    return replace(state, **decision.changes)
