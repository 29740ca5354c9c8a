"""The dashboard's calls to Stripe. The card never reaches us: the customer's browser gives it to Stripe.js, which
confirms a SetupIntent we made; we see only Stripe's ids and what Stripe tells us about the card (brand, last
four digits, expiry) for the billing page, and keep none of it.

Subscribing: `start` makes (once) the Stripe customer with the email that logged in and a SetupIntent for it;
the browser confirms it with the card; `subscribe` checks that SetupIntent belongs to that customer and
succeeded, makes its payment method the customer's default and creates the subscription. Its status reaches the
control plane through the signed webhook, as every change does. With NOREX_STRIPE_CHECKOUT, hosted Stripe
Checkout and the Customer Portal do the same on Stripe's pages instead.

Errors are one line for the customer (PaymentFailed: what to do) or for the page (StripeUnavailable); none
carries a Stripe id, an email or Stripe's own message text beyond a card decline's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import stripe

from norex.billing.stripe_api import StripeUnavailable, client
from norex.errors import NorexError
from norex.settings import Settings

# Statuses in which a subscription still runs (and so may be cancelled or resumed).
RUNNING = frozenset({"active", "trialing", "past_due", "unpaid", "incomplete", "paused"})
INVOICES_SHOWN = 12


class PaymentFailed(NorexError):
    """The customer's payment did not go through; the message says what they can do."""


@dataclass(frozen=True)
class Plan:
    amount: int  # in the currency's smallest unit
    currency: str
    interval: str

    def describe(self) -> str:
        return f"{money(self.amount, self.currency)} a {self.interval}"


def money(amount: int, currency: str) -> str:
    return f"{amount / 100:.2f} {currency.upper()}"


def _stripe_call(what: str):
    """A decorator turning Stripe's exceptions into our one-line ones (no Stripe message or id in them)."""

    def wrap(function):
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except (PaymentFailed, StripeUnavailable):
                raise
            except stripe.CardError:
                raise PaymentFailed("Your card was declined. Try another card.") from None
            except stripe.InvalidRequestError as exc:
                raise StripeUnavailable(f"Stripe refused to {what} (HTTP {exc.http_status})") from None
            except stripe.StripeError as exc:
                raise StripeUnavailable(f"Stripe could not {what} just now ({type(exc).__name__})") from None

        return call

    return wrap


class Payments:
    """One per dashboard process; every method is one short exchange with Stripe (run it off the event loop)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.stripe_price is not None and settings.stripe_api_key is not None
        self.settings = settings
        self.price = settings.stripe_price
        self.client = client(settings)
        self._plan: Plan | None = None

    # -- what is sold ------------------------------------------------------------------------------------------

    @_stripe_call("show the price")
    def plan(self) -> Plan:
        if self._plan is None:
            found = self.client.v1.plans.retrieve(self.price)  # a recurring price answers as a plan too
            self._plan = Plan(int(found.amount or 0), str(found.currency), str(found.interval))
        return self._plan

    # -- subscribing with the card form on our page --------------------------------------------------------------

    @_stripe_call("start the payment")
    def start(self, email: str, stripe_customer_id: str | None) -> tuple[str, str]:
        """(Stripe customer id, SetupIntent client secret): the customer is made once, with only the email."""
        if stripe_customer_id is None:
            stripe_customer_id = self.client.v1.customers.create(params={"email": email}).id
        intent = self.client.v1.setup_intents.create(params={"customer": stripe_customer_id, "usage": "off_session"})
        return stripe_customer_id, str(intent.client_secret)

    def _confirmed_method(self, stripe_customer_id: str, setup_intent_id: str) -> str:
        """The payment method of a succeeded SetupIntent of this customer, attached to them and their default."""
        intent = self.client.v1.setup_intents.retrieve(setup_intent_id)
        if intent.customer != stripe_customer_id:
            raise PaymentFailed("That payment is not yours. Reload the page and try again.")
        if intent.status != "succeeded" or not intent.payment_method:
            raise PaymentFailed("The card was not confirmed. Try again, or try another card.")
        method_id = intent.payment_method if isinstance(intent.payment_method, str) else intent.payment_method.id
        method = self.client.v1.payment_methods.retrieve(method_id)
        if method.customer is None:  # Stripe attaches it on confirmation; the stand-in does not
            self.client.v1.payment_methods.attach(method_id, params={"customer": stripe_customer_id})
        self.client.v1.customers.update(
            stripe_customer_id, params={"invoice_settings": {"default_payment_method": method_id}}
        )
        return method_id

    def _default_method(self, stripe_customer_id: str) -> str | None:
        customer = self.client.v1.customers.retrieve(stripe_customer_id).to_dict()
        found = (customer.get("invoice_settings") or {}).get("default_payment_method")
        return found if isinstance(found, str) else (found or {}).get("id")

    @_stripe_call("make the subscription")
    def subscribe(self, stripe_customer_id: str, setup_intent_id: str) -> Mapping[str, Any]:
        """The new subscription (as Stripe answered); a first payment that fails leaves none behind."""
        self._confirmed_method(stripe_customer_id, setup_intent_id)
        subscription = self.client.v1.subscriptions.create(
            params={"customer": stripe_customer_id, "items": [{"plan": self.price}]}
        )
        if subscription.status not in ("active", "trialing"):
            self.client.v1.subscriptions.cancel(subscription.id)
            raise PaymentFailed("The first payment did not go through. Try another card.")
        return subscription.to_dict()

    # -- the billing page ---------------------------------------------------------------------------------------

    @_stripe_call("show your billing")
    def billing(self, stripe_customer_id: str) -> dict[str, Any]:
        """The card Stripe has on file and the latest invoices (shown, never stored)."""
        card = None
        method_id = self._default_method(stripe_customer_id)
        if method_id:
            found = self.client.v1.payment_methods.retrieve(method_id).to_dict().get("card") or {}
            card = {k: found.get(k) for k in ("brand", "last4", "exp_month", "exp_year")}
        invoices = []
        listed = self.client.v1.invoices.list(params={"customer": stripe_customer_id, "limit": INVOICES_SHOWN})
        for found in listed.data:
            invoice = found.to_dict()
            amount = int(invoice.get("amount_due") or invoice.get("total") or 0)
            invoices.append({
                "created": int(invoice.get("created") or invoice.get("date") or 0),
                "amount": money(amount, str(invoice.get("currency") or "eur")),
                "status": invoice.get("status") or "",
                "url": invoice.get("hosted_invoice_url"),
            })  # fmt: skip
        return {"card": card, "invoices": invoices}

    @_stripe_call("change the subscription")
    def set_cancel_at_period_end(self, subscription_id: str, cancel: bool) -> Mapping[str, Any]:
        subscription = self.client.v1.subscriptions.update(subscription_id, params={"cancel_at_period_end": cancel})
        return subscription.to_dict()

    @_stripe_call("start replacing the card")
    def card_setup(self, stripe_customer_id: str) -> str:
        intent = self.client.v1.setup_intents.create(params={"customer": stripe_customer_id, "usage": "off_session"})
        return str(intent.client_secret)

    @_stripe_call("replace the card")
    def replace_card(self, stripe_customer_id: str, setup_intent_id: str) -> None:
        """The confirmed card becomes the default; the one it replaces is removed from the customer at Stripe."""
        old = self._default_method(stripe_customer_id)
        new = self._confirmed_method(stripe_customer_id, setup_intent_id)
        if old and old != new:
            self.client.v1.payment_methods.detach(old)

    # -- closing the account ------------------------------------------------------------------------------------

    @_stripe_call("close the account")
    def close(self, stripe_customer_id: str, subscription_id: str | None, status: str | None) -> None:
        """Cancel the subscription now, then delete the customer (and with it their cards) at Stripe. Both come
        back as signed events: the server is destroyed and the customer erased here."""
        if subscription_id is not None and status in RUNNING:
            try:
                self.client.v1.subscriptions.cancel(subscription_id)
            except stripe.InvalidRequestError as exc:
                if exc.code != "resource_missing":
                    raise
        try:
            self.client.v1.customers.delete(stripe_customer_id)
        except stripe.InvalidRequestError as exc:
            if exc.code != "resource_missing":
                raise

    # -- hosted Checkout and the Customer Portal ----------------------------------------------------------------

    @_stripe_call("open Stripe Checkout")
    def checkout_url(self, base: str, email: str, stripe_customer_id: str | None, reference: str | None) -> str:
        """A Checkout Session for one subscription. Our opaque customer id (never the email) is the reference; the
        email only pre-fills the form of a customer Stripe does not know yet."""
        params: dict[str, Any] = {
            "mode": "subscription",
            "line_items": [{"price": self.price, "quantity": 1}],
            "success_url": f"{base}/account?subscribed=1",
            "cancel_url": f"{base}/subscribe",
        }
        if stripe_customer_id is not None:
            params["customer"] = stripe_customer_id
        else:
            params["customer_email"] = email
        if reference is not None:
            params["client_reference_id"] = reference
        return str(self.client.v1.checkout.sessions.create(params=params).url)

    @_stripe_call("open Stripe's billing page")
    def portal_url(self, base: str, stripe_customer_id: str) -> str:
        session = self.client.v1.billing_portal.sessions.create(
            params={"customer": stripe_customer_id, "return_url": f"{base}/billing"}
        )
        return str(session.url)
