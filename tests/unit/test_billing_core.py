"""The pure core: what each Stripe event means for a customer, in any order, delivered any number of times."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from norex.billing import core
from norex.billing.core import CustomerState, Decision, decide, decide_snapshot, desired_for, evolve
from tests.unit.control_support import customer_event, event, sub_event, subscription

CUS = "cus_TESTcustomer01"
NOW = 1_700_000_000
GRACE = 7 * 86400


def run(
    events: list[dict[str, Any]], state: CustomerState | None = None, now: int = NOW, grace: int = GRACE
) -> tuple[CustomerState | None, list[Decision]]:
    """Fold events through the core as the store does: duplicates (by id) applied once, erasure remembered."""
    seen: set[str] = set()
    erased = False
    decisions = []
    for evt in events:
        if evt["id"] in seen:
            continue
        seen.add(evt["id"])
        decision = decide(evt, state, now=now, grace_seconds=grace, erased=erased)
        decisions.append(decision)
        erased = erased or decision.erase
        state = evolve(state, decision)
    return state, decisions


def one(evt: dict[str, Any], state: CustomerState | None = None, **kw: Any) -> Decision:
    return decide(evt, state, now=kw.pop("now", NOW), grace_seconds=kw.pop("grace", GRACE), **kw)


def active(sub: str = "sub_A", created: int = 100, **kw: Any) -> CustomerState:
    base = {
        "stripe_customer_id": CUS,
        "subscription_id": sub,
        "status": "active",
        "status_since": created,
        "last_event_created": created,
        "desired": "present",
    }
    return CustomerState(**{**base, **kw})


# -- status to desired state --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "desired"),
    [
        ("active", "present"),
        ("trialing", "present"),
        ("past_due", "present"),
        ("incomplete", "absent"),
        ("incomplete_expired", "absent"),
        ("canceled", "absent"),
        ("unpaid", "absent"),
        ("paused", "absent"),
        (None, "absent"),
    ],
)
def test_status_to_desired(status: str | None, desired: str) -> None:
    assert desired_for(status, NOW, NOW, GRACE) == desired


def test_past_due_keeps_the_server_for_the_grace_period_only() -> None:
    assert desired_for("past_due", 1000, 1000 + GRACE - 1, GRACE) == "present"
    assert desired_for("past_due", 1000, 1000 + GRACE, GRACE) == "absent"
    assert desired_for("past_due", 1000, 1000, 0) == "absent"


def test_past_due_event_after_the_grace_wants_no_server() -> None:
    d = one(sub_event("updated", "sub_A", CUS, "past_due", 100), active(created=50), now=100 + GRACE)
    assert d.changes["desired"] == "absent" and d.changes["status"] == "past_due" and d.enqueue


# -- subscription events ------------------------------------------------------------------------------------


def test_a_new_active_subscription_wants_a_server() -> None:
    d = one(sub_event("created", "sub_A", CUS, "active", 100, period_end=200))
    assert d.ignore is None and d.enqueue and d.stripe_customer_id == CUS
    assert d.changes == {
        "subscription_id": "sub_A",
        "status": "active",
        "status_since": 100,
        "period_end": 200,
        "last_event_created": 100,
        "newest_event_created": 100,
        "desired": "present",
        "cancel_at_period_end": False,
    }


def test_cancelling_at_the_period_end_is_noted_and_keeps_the_server_without_waking_the_worker() -> None:
    state, _ = run([sub_event("created", "sub_A", CUS, "active", 100, period_end=200)])
    ending = sub_event("updated", "sub_A", CUS, "active", 110, period_end=200)
    ending["data"]["object"]["cancel_at_period_end"] = True
    d = one(ending, state)
    assert d.changes == {"cancel_at_period_end": True, "last_event_created": 110, "newest_event_created": 110}
    assert not d.enqueue
    newer = sub_event("updated", "sub_A", CUS, "active", 120, period_end=200)
    newer["data"]["object"]["cancel_at"] = 200  # newer API versions say it with a time
    assert one(newer, state).changes["cancel_at_period_end"] is True
    state, _ = run([sub_event("created", "sub_A", CUS, "active", 100), ending])
    resumed = sub_event("updated", "sub_A", CUS, "active", 130)
    assert one(resumed, state).changes["cancel_at_period_end"] is False


def test_incomplete_creates_nothing_until_paid() -> None:
    state, _ = run([sub_event("created", "sub_A", CUS, "incomplete", 100)])
    assert state is not None and state.desired == "absent"
    state, _ = run([sub_event("updated", "sub_A", CUS, "active", 101)], state)
    assert state is not None and state.desired == "present" and state.status_since == 101


@pytest.mark.parametrize("status", ["canceled", "unpaid", "incomplete_expired", "paused"])
def test_ending_statuses_destroy(status: str) -> None:
    state, decisions = run([sub_event("updated", "sub_A", CUS, status, 200)], active())
    assert state is not None and state.desired == "absent" and decisions[-1].enqueue


def test_deleted_event_means_canceled_whatever_its_status_field_says() -> None:
    state, _ = run([sub_event("deleted", "sub_A", CUS, "active", 200)], active())
    assert state is not None and state.status == "canceled" and state.desired == "absent"


def test_older_event_is_ignored() -> None:
    d = one(sub_event("updated", "sub_A", CUS, "past_due", 99), active(created=100))
    assert d.ignore == "older than the last event applied"


def test_deleted_before_created_gives_no_server() -> None:
    state, decisions = run(
        [sub_event("deleted", "sub_A", CUS, "canceled", 200), sub_event("created", "sub_A", CUS, "active", 100)]
    )
    assert state is not None and state.desired == "absent" and state.status == "canceled"
    assert decisions[1].ignore == "subscription already ended"


@pytest.mark.parametrize("terminal", ["canceled", "incomplete_expired"])
def test_terminal_is_final_even_for_newer_or_same_second_events(terminal: str) -> None:
    state = active(status=terminal, desired="absent", last_event_created=200)
    for created in (150, 200, 300):
        assert one(sub_event("updated", "sub_A", CUS, "active", created), state).ignore == "subscription already ended"


def test_terminal_wins_even_when_older_than_the_last_event() -> None:
    """A late cancel is never lost: Stripe cannot revive a subscription, so it holds whenever it arrives."""
    state, _ = run([sub_event("deleted", "sub_A", CUS, "canceled", 90)], active(created=100))
    assert state is not None and state.desired == "absent" and state.last_event_created == 100


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_same_second_the_later_lifecycle_step_wins(order: tuple[int, int]) -> None:
    events = [sub_event("created", "sub_A", CUS, "incomplete", 100), sub_event("updated", "sub_A", CUS, "active", 100)]
    state, _ = run([events[i] for i in order])
    assert state is not None and state.status == "active" and state.desired == "present"


def test_unknown_status_changes_nothing() -> None:
    assert one(sub_event("updated", "sub_A", CUS, "frozen", 200), active()).ignore == "unknown subscription status"


def test_a_repeat_with_a_new_period_is_noted_without_work() -> None:
    d = one(sub_event("updated", "sub_A", CUS, "active", 200, period_end=3_000_000_000), active())
    assert d.changes == {"period_end": 3_000_000_000, "last_event_created": 200, "newest_event_created": 200}
    assert not d.enqueue


def test_identical_state_is_no_change() -> None:
    state = active(period_end=2_000_000_000, newest_event_created=100)
    assert one(sub_event("updated", "sub_A", CUS, "active", 100), state).ignore == "no change"


def test_period_end_from_items_in_newer_api_versions() -> None:
    sub = subscription("sub_A", CUS, "active", period_end=None)
    sub["items"] = {"data": [{"current_period_end": 500}, {"current_period_end": 700}, {"x": 1}]}
    assert core.period_end_of(sub) == 700
    assert core.period_end_of({"items": {"data": "junk"}}) is None


# -- several subscriptions ----------------------------------------------------------------------------------


def test_a_new_subscription_after_an_ended_one_takes_over() -> None:
    ended = active(status="canceled", desired="absent", last_event_created=200)
    state, _ = run([sub_event("created", "sub_B", CUS, "active", 300)], ended)
    assert state is not None and state.subscription_id == "sub_B" and state.desired == "present"


def test_the_end_of_another_subscription_does_not_destroy_the_current_server() -> None:
    d = one(sub_event("deleted", "sub_OLD", CUS, "canceled", 300), active())
    assert d.changes == {"newest_event_created": 300, "ended_subscription_id": "sub_OLD"} and not d.enqueue
    # ...and an older event of that subscription cannot take over once the current one has ended.
    state, _ = run(
        [
            sub_event("deleted", "sub_OLD", CUS, "canceled", 300),
            sub_event("deleted", "sub_A", CUS, "canceled", 200),
            sub_event("created", "sub_OLD", CUS, "active", 250),
        ],
        active(),
    )
    assert state is not None and state.subscription_id == "sub_A" and state.desired == "absent"


def test_an_abandoned_second_checkout_does_not_destroy_the_current_server() -> None:
    state, _ = run(
        [
            sub_event("created", "sub_B", CUS, "incomplete", 300),
            sub_event("updated", "sub_B", CUS, "incomplete_expired", 400),
        ],
        active(),
    )
    assert state == active(newest_event_created=400, ended_subscription_id="sub_B")


def test_an_old_event_of_another_subscription_is_ignored() -> None:
    d = one(sub_event("updated", "sub_B", CUS, "active", 50), active())
    assert d.ignore == "older than the newest subscription event"


def test_plan_switch_in_one_second_keeps_the_server_in_either_order() -> None:
    old_end = sub_event("deleted", "sub_A", CUS, "canceled", 300)
    new = sub_event("created", "sub_B", CUS, "active", 300)
    for events in ([old_end, new], [new, old_end]):
        state, _ = run(events, active())
        assert state is not None and state.desired == "present" and state.subscription_id == "sub_B"


# -- customer, checkout and invoice events ------------------------------------------------------------------


def test_customer_created_records_the_email_without_a_server() -> None:
    d = one(customer_event("created", CUS, "ada@example.org", 100))
    assert d.changes == {"email": "ada@example.org", "email_event_created": 100} and not d.enqueue
    state = evolve(None, d)
    assert state is not None and state.desired == "absent"


def test_email_is_kept_current_and_a_late_older_update_cannot_restore_an_old_one() -> None:
    state, _ = run(
        [
            customer_event("created", CUS, "old@example.org", 100),
            customer_event("updated", CUS, "new@example.org", 300),
            customer_event("updated", CUS, "middle@example.org", 200),
        ]
    )
    assert state is not None and state.email == "new@example.org"


def test_email_event_does_not_touch_the_subscription_order() -> None:
    state, _ = run([customer_event("updated", CUS, "x@example.org", 500)], active())
    assert state == active(email="x@example.org", email_event_created=500)


def test_checkout_links_subscription_and_email() -> None:
    session = {
        "id": "cs_1",
        "object": "checkout.session",
        "mode": "subscription",
        "customer": CUS,
        "subscription": "sub_A",
        "customer_details": {"email": "ada@example.org"},
    }
    d = one(event("checkout.session.completed", session, 100))
    assert d.changes == {"email": "ada@example.org", "email_event_created": 100, "subscription_id": "sub_A"}
    assert d.enqueue
    assert one(event("checkout.session.completed", {**session, "mode": "payment"}, 100)).ignore
    # A known subscription is not replaced by a checkout (its status events decide that).
    d = one(event("checkout.session.completed", {**session, "subscription": "sub_Z"}, 200), active(email="a@b.c"))
    assert "subscription_id" not in d.changes


def test_invoice_paid_recovers_past_due() -> None:
    state = active(status="past_due", status_since=100)
    obj = {"object": "invoice", "customer": CUS, "parent": {"subscription_details": {"subscription": "sub_A"}}}
    d = one(event("invoice.paid", obj, 150), state, now=100 + GRACE + 1)  # even after the grace ran out
    assert d.changes["status"] == "active" and d.enqueue
    after = evolve(state, d)
    assert after is not None and after.desired == "present" and after.status_since == 150


def test_invoice_events_otherwise_only_ask_for_a_recheck() -> None:
    obj = {"object": "invoice", "customer": CUS, "subscription": "sub_A"}
    for kind in ("invoice.paid", "invoice.payment_failed"):
        d = one(event(kind, obj, 200), active())
        assert d.ignore is None and not d.changes and d.enqueue
    # Payment failure is not taken as past_due: the subscription events say what Stripe decided.
    d = one(event("invoice.payment_failed", obj, 200), active(status="past_due"))
    assert not d.changes
    assert one(event("invoice.paid", {**obj, "subscription": "sub_Z"}, 200), active()).ignore
    assert one(event("invoice.paid", {**obj, "subscription": None}, 200), active()).ignore


def test_invoice_for_an_unknown_subscription_links_it_for_the_recheck() -> None:
    d = one(event("invoice.paid", {"object": "invoice", "customer": CUS, "subscription": "sub_A"}, 200))
    assert d.changes == {"subscription_id": "sub_A"} and d.enqueue


def test_customer_deleted_erases() -> None:
    d = one(customer_event("deleted", CUS, "ada@example.org", 300), active(email="ada@example.org"))
    assert d.erase and d.enqueue
    assert d.changes == {"email": None, "desired": "absent", "erase_requested": True}
    assert one(customer_event("deleted", CUS, None, 300)).erase


def test_nothing_applies_to_an_erased_customer() -> None:
    for evt in (
        sub_event("created", "sub_A", CUS, "active", 500),
        customer_event("updated", CUS, "ada@example.org", 500),
        customer_event("deleted", CUS, None, 500),
    ):
        assert one(evt, erased=True).ignore == "customer erased"
        assert one(evt, active(erase_requested=True)).ignore == "customer erased"


@pytest.mark.parametrize(
    "evt",
    [
        event("charge.succeeded", {"customer": CUS}, 1),
        event("customer.subscription.updated", {"id": "sub_A", "status": "active"}, 1),
        {"id": "evt_1", "type": "customer.created", "created": 1},
        {"id": "evt_1", "type": "customer.created", "created": "1", "data": {"object": {"id": CUS}}},
        {"id": "evt_1", "type": ["list"], "created": 1, "data": {"object": {"id": CUS}}},
        event("customer.subscription.updated", {"id": "sub_A", "customer": CUS, "status": ["x"]}, 1),
    ],
)
def test_malformed_or_unhandled_events_are_ignored(evt: dict[str, Any]) -> None:
    assert one(evt).ignore


# -- re-fetched subscriptions -------------------------------------------------------------------------------


def test_snapshot_wins_over_events_applied_later_by_stripe_clock() -> None:
    state = active(last_event_created=NOW + 30)  # Stripe's clock ahead of ours
    d = decide_snapshot(subscription("sub_A", CUS, "unpaid"), state, now=NOW, grace_seconds=GRACE)
    after = evolve(state, d)
    assert after is not None and d.enqueue
    assert (after.status, after.desired, after.last_event_created) == ("unpaid", "absent", NOW + 30)


def test_snapshot_never_revives_and_only_concerns_the_current_subscription() -> None:
    ended = active(status="canceled", desired="absent")
    assert decide_snapshot(subscription("sub_A", CUS, "active"), ended, now=NOW, grace_seconds=GRACE).ignore
    assert decide_snapshot(subscription("sub_B", CUS, "active"), active(), now=NOW, grace_seconds=GRACE).ignore


# -- properties ---------------------------------------------------------------------------------------------

NEXT = {
    "incomplete": ["active", "incomplete_expired"],
    "trialing": ["active", "past_due", "canceled", "paused"],
    "active": ["active", "past_due", "canceled"],
    "past_due": ["active", "unpaid", "canceled"],
    "unpaid": ["active", "canceled"],
    "paused": ["active", "canceled"],
}


@st.composite
def lifecycle(draw: st.DrawFn, sub: str = "sub_A", start: int = 1000) -> list[dict[str, Any]]:
    """A plausible history of one subscription: valid transitions, `created` never decreasing, and two events in
    one second only when the second is further along (Stripe's second-resolution clock)."""
    status = draw(st.sampled_from(["incomplete", "trialing", "active"]))
    created, period_end = start + draw(st.integers(0, 50)), 5000
    events = [sub_event("created", sub, CUS, status, created, period_end=period_end)]
    for _ in range(draw(st.integers(0, 7))):
        if status in core.TERMINAL:
            break
        nxt = draw(st.sampled_from(NEXT[status]))
        step = draw(st.integers(0 if core.RANK[nxt] > core.RANK[status] else 1, 40))
        created += step
        period_end += draw(st.integers(0, 1)) * 100
        kind = "deleted" if nxt in core.TERMINAL and draw(st.booleans()) else "updated"
        events.append(sub_event(kind, sub, CUS, nxt, created, period_end=period_end))
        status = nxt
    return events


def deliveries(draw: st.DrawFn, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Any order, with each event possibly delivered several times."""
    repeated = [e for e in events for _ in range(draw(st.integers(1, 3)))]
    return draw(st.permutations(repeated))


def final(state: CustomerState | None) -> tuple:
    assert state is not None
    return (state.subscription_id, state.status, state.period_end, state.last_event_created, state.desired)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_any_order_and_any_duplicates_end_in_the_newest_event(data: st.DataObject) -> None:
    events = data.draw(lifecycle())
    got, _ = run(deliveries(data.draw, events), now=10_000, grace=10**9)
    want, _ = run([events[-1]], now=10_000, grace=10**9)
    assert final(got) == final(want)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_new_subscription_after_an_ended_one_wins_in_any_order(data: st.DataObject) -> None:
    old = data.draw(lifecycle("sub_A", 1000).filter(lambda es: es[-1]["data"]["object"]["status"] in core.TERMINAL))
    new = data.draw(lifecycle("sub_B", old[-1]["created"] + 1))
    got, _ = run(deliveries(data.draw, old + new), now=10_000, grace=10**9)
    want = core.desired_for(new[-1]["data"]["object"]["status"], 0, 10_000, 10**9)
    assert got is not None and got.desired == want


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@st.composite
def odd_events(draw: st.DrawFn) -> dict[str, Any]:
    """Events shaped like Stripe's with any field missing or of the wrong type."""
    obj = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "id": st.sampled_from([CUS, "sub_A", "", None]) | json_values,
                "customer": st.sampled_from([CUS, {"id": CUS}, None]) | json_values,
                "status": st.sampled_from(sorted(core.KNOWN_STATUSES)) | json_values,
                "email": st.sampled_from(["a@b.c", None]) | json_values,
                "mode": st.sampled_from(["subscription", "payment"]) | json_values,
                "subscription": st.sampled_from(["sub_A", None]) | json_values,
                "current_period_end": st.integers() | json_values,
                "items": json_values,
                "parent": json_values,
                "customer_details": json_values,
                "deleted": json_values,
            },
        )
    )
    evt = {
        "id": "evt_x",
        "type": draw(st.sampled_from(sorted(core.HANDLED)) | json_values),
        "created": draw(st.integers(0, 3000) | json_values),
        "data": draw(st.sampled_from([{"object": obj}, obj]) | json_values),
    }
    return evt


states = st.none() | st.builds(
    CustomerState,
    stripe_customer_id=st.just(CUS),
    email=st.none() | st.just("a@b.c"),
    subscription_id=st.sampled_from([None, "sub_A", "sub_B"]),
    status=st.none() | st.sampled_from(sorted(core.KNOWN_STATUSES)),
    status_since=st.none() | st.integers(0, 3000),
    period_end=st.none() | st.integers(0, 3000),
    last_event_created=st.none() | st.integers(0, 3000),
    newest_event_created=st.none() | st.integers(0, 3000),
    email_event_created=st.none() | st.integers(0, 3000),
    desired=st.sampled_from(["present", "absent"]),
    erase_requested=st.booleans(),
)


@settings(max_examples=1000, deadline=None)
@given(odd_events(), states, st.booleans())
def test_decide_is_total_and_sets_only_known_fields(evt: dict[str, Any], state: Any, erased: bool) -> None:
    d = decide(evt, state, now=NOW, grace_seconds=GRACE, erased=erased)
    if d.ignore is not None:
        assert not d.changes and not d.erase and not d.enqueue
    assert set(d.changes) <= core.FIELDS
    assert d.changes.get("desired", "absent") in ("present", "absent")
    if d.changes.get("desired") == "present":
        assert d.changes.get("status", state.status if state else None) in core.LIVE
    evolve(state, d)


def test_decisions_are_immutable() -> None:
    d = one(sub_event("created", "sub_A", CUS, "active", 100))
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.erase = True  # type: ignore[misc]
