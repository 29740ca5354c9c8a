"""A whole control plane on this machine: the Stripe stand-in (localstripe on loopback), `norex serve` and
`norex worker` (lab backend) as separate processes on a throwaway database and queue in one work folder.

`norex demo` tells its story with it; the end-to-end tests drive the same plane.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Any

from norex.db.database import Database, connect
from norex.db.models import Customer, Server
from norex.demo.processes import DemoFailed, Processes, norex_cli, wait_for
from norex.net import free_port, port_open
from norex.provision.interface import control_plane_id
from norex.provision.lab import LabProvisioner

WEBHOOK_EVENTS = (
    "checkout.session.completed",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
)
CARD = {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}}
LOOPBACK = "127.0.0.1"
PRICE = "norex-monthly"  # the plan the dashboard sells (NOREX_STRIPE_PRICE), made with this id on the stand-in


def register_webhook(api_base: str, url: str, secret: str) -> None:
    """Tell the stand-in where to send its signed events (localstripe's own configuration endpoint)."""
    import httpx

    fields = {"url": url, "secret": secret, "events[]": list(WEBHOOK_EVENTS)}
    response = httpx.post(f"{api_base}/_config/webhooks/norex", data=fields, timeout=10)
    if response.status_code != 200:
        raise DemoFailed(f"the Stripe stand-in refused the webhook registration (HTTP {response.status_code})")


class LocalPlane:
    """The plane's processes, its database (read by the caller) and a Stripe client on the stand-in."""

    def __init__(self, work: Path, env: dict[str, str] | None = None) -> None:
        self.work = work
        self.stripe_port, self.web_port = free_port(), free_port()
        self.api_base = f"http://{LOOPBACK}:{self.stripe_port}"
        self.env = {
            **os.environ,
            "NOREX_DATABASE_URL": f"sqlite:///{work / 'norex.db'}",
            "NOREX_QUEUE_URL": f"sqlite:///{work / 'queue.db'}",
            "NOREX_STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(24),
            "NOREX_STRIPE_API_KEY": "sk_test_" + secrets.token_hex(12),
            "NOREX_STRIPE_API_BASE": self.api_base,
            "NOREX_STRIPE_PUBLISHABLE_KEY": "pk_test_" + secrets.token_hex(12),
            "NOREX_STRIPE_PRICE": PRICE,
            "NOREX_STRIPE_JS_URL": f"{self.api_base}/js.stripe.com/v3/",  # the stand-in's own Stripe.js
            "NOREX_BACKEND": "lab",
            "XDG_DATA_HOME": str(work),
            **(env or {}),
        }
        self.procs = Processes(work, self.env)
        self.provisioner = LabProvisioner(
            control_plane_id(self.env["NOREX_DATABASE_URL"]), image=self.env.get("NOREX_LAB_IMAGE") or "stock"
        )
        self.db: Database | None = None
        self.stripe: Any = None
        self.plan: Any = None

    def start(self) -> None:
        """Stand-in, serve, webhook registration, worker; then a Stripe client and a monthly plan."""
        import stripe

        self.procs.start("stripe", [sys.executable, "-m", "norex.stripe_standin", str(self.stripe_port)])
        wait_for("the Stripe stand-in listening", lambda: port_open(LOOPBACK, self.stripe_port), 30)
        self.procs.start("serve", [norex_cli(), "serve", "--port", str(self.web_port)])
        wait_for("norex serve listening", lambda: self.procs.check() or port_open(LOOPBACK, self.web_port), 30)
        register_webhook(
            self.api_base, f"http://{LOOPBACK}:{self.web_port}/stripe/webhook", self.env["NOREX_STRIPE_WEBHOOK_SECRET"]
        )
        self.start_worker()
        self.db = connect(self.env["NOREX_DATABASE_URL"])
        self.stripe = stripe.StripeClient(self.env["NOREX_STRIPE_API_KEY"], base_addresses={"api": self.api_base})
        self.product = self.stripe.v1.products.create(params={"name": "NorexVPN"})
        self.plan = self.new_plan(500, "month", PRICE)

    def new_plan(self, amount: int, interval: str, plan_id: str | None = None) -> Any:
        params = {"amount": amount, "currency": "eur", "interval": interval, "product": self.product.id}
        return self.stripe.v1.plans.create(params=params | ({"id": plan_id} if plan_id else {}))

    def start_worker(self, env: dict[str, str] | None = None) -> None:
        self.procs.start("worker", [norex_cli(), "worker"], env={**self.env, **(env or {})})

    def stop(self) -> None:
        self.procs.stop()
        if self.db is not None:
            self.db.dispose()

    # -- Stripe's side ---------------------------------------------------------------------------------------

    def subscribe(self, email: str, payment_method: dict[str, Any] = CARD) -> tuple[Any, Any]:
        """A Stripe customer with this payment method as default, subscribed to the monthly plan."""
        customer = self.stripe.v1.customers.create(params={"email": email})
        method = self.stripe.v1.payment_methods.create(params=payment_method)
        self.stripe.v1.payment_methods.attach(method.id, params={"customer": customer.id})
        self.stripe.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": method.id}})
        subscription = self.stripe.v1.subscriptions.create(
            params={"customer": customer.id, "items": [{"plan": self.plan.id}]}
        )
        return customer, subscription

    # -- what the plane holds --------------------------------------------------------------------------------

    def row(self, stripe_customer_id: str) -> Customer | None:
        assert self.db is not None
        with self.db.read() as session:
            return session.query(Customer).filter_by(stripe_customer_id=stripe_customer_id).one_or_none()

    def server(self, customer_id: str) -> Server | None:
        assert self.db is not None
        with self.db.read() as session:
            return session.get(Server, customer_id)

    def wait_customer(self, stripe_customer_id: str, timeout: float = 60) -> Customer:
        def recorded() -> Customer | None:
            self.procs.check()
            return self.row(stripe_customer_id)

        return wait_for("the signed webhook recorded the customer", recorded, timeout)

    def wait_ready(self, customer_id: str, timeout: float) -> Server:
        def ready() -> Server | None:
            self.procs.check()
            server = self.server(customer_id)
            return server if server is not None and server.state == "ready" else None

        return wait_for(f"the server of {customer_id} converged", ready, timeout, interval=1)

    def wait_gone(self, customer_id: str, timeout: float) -> None:
        def gone() -> bool:
            self.procs.check()
            return self.server(customer_id) is None and self.provisioner.find(customer_id) is None

        wait_for(f"the server of {customer_id} destroyed", gone, timeout, interval=1)

    def wait_erased(self, stripe_customer_id: str, timeout: float) -> None:
        def erased() -> bool:
            self.procs.check()
            return self.row(stripe_customer_id) is None

        wait_for("the customer erased", erased, timeout)

    def files_holding(self, needle: bytes) -> list[str]:
        """The database files (main, WAL, shared memory) whose bytes still contain needle."""
        if self.db is not None:
            self.db.dispose()  # the last connection folds the WAL back
        return [p.name for p in self.work.glob("norex.db*") if needle in p.read_bytes()]
