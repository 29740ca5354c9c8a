"""Ask Stripe for the truth: re-fetch a customer's subscription before the worker acts on it.

Only when NOREX_STRIPE_API_KEY is set; without it the webhook events alone decide. The fetch runs outside
any database transaction (a slow API must not hold SQLite's write lock); its result is applied in a short
one afterwards. Errors carry no Stripe ids or messages from Stripe (they name the subscription).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import stripe

from norex.billing import store
from norex.db.database import Database
from norex.db.models import Customer
from norex.errors import NorexError
from norex.settings import Settings


class StripeUnavailable(NorexError):
    """The Stripe API did not answer usefully; the worker retries later."""


def client(settings: Settings) -> stripe.StripeClient:
    """A Stripe client for NOREX_STRIPE_API_KEY (and NOREX_STRIPE_API_BASE: the stand-in), retrying twice."""
    assert settings.stripe_api_key is not None
    base = {"api": settings.stripe_api_base} if settings.stripe_api_base else {}
    return stripe.StripeClient(settings.stripe_api_key.get_secret_value(), base_addresses=base, max_network_retries=2)


def fetch_subscription(settings: Settings, subscription_id: str) -> Mapping[str, Any] | None:
    """The subscription as Stripe has it now; None without an API key or if Stripe does not know it."""
    if settings.stripe_api_key is None:
        return None
    try:
        subscription = client(settings).v1.subscriptions.retrieve(subscription_id)
    except stripe.InvalidRequestError as exc:
        if exc.code == "resource_missing":
            return None
        raise StripeUnavailable(f"Stripe rejected the subscription request (HTTP {exc.http_status})") from None
    except stripe.StripeError as exc:
        raise StripeUnavailable(f"Stripe API request failed ({type(exc).__name__})") from None
    return subscription.to_dict()


def refresh_customer(db: Database, settings: Settings, customer_id: str, now: int | None = None) -> store.Outcome:
    """Re-fetch the customer's subscription and apply it; the worker calls this before provisioning or destroying.

    Returns "ignored" when there is nothing to ask (no API key, unknown customer, no subscription yet) or
    Stripe does not know the subscription; the stored decision then stands.
    """
    if settings.stripe_api_key is None:
        return store.Outcome("ignored", reason="no Stripe API key")
    with db.read() as session:
        row = session.get(Customer, customer_id)
        subscription_id = row.subscription_id if row is not None else None
    if subscription_id is None:
        return store.Outcome("ignored", reason="no subscription to re-check")
    subscription = fetch_subscription(settings, subscription_id)
    if subscription is None:
        return store.Outcome("ignored", reason="Stripe does not know the subscription")
    with db.write() as session:
        return store.apply_subscription(
            session,
            customer_id,
            subscription,
            int(time.time()) if now is None else now,
            grace_seconds=settings.past_due_grace_seconds,
        )
