"""`norex demo`: the whole story on this machine, every step observed, with timings.

A Stripe stand-in (localstripe on loopback), `norex serve` and `norex worker` (lab backend) run as
separate processes on a throwaway database and queue. A customer subscribes with a test card; the
signed webhook arrives; a lab server is provisioned and converged; a lab device connects through
WireGuard, resolves a name and reaches the lab web through the server; the subscription is
cancelled; the server is destroyed; the customer is deleted and erased (the email is then in no
byte of the database files). Exit status 0 only if every step was seen.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import click

from norex.errors import MissingPrerequisite, NorexError

T = TypeVar("T")
DEMO_DEVICE = "demo-phone"
CURL_IP = ["curl", "-s", "-m", "5", "http://www.example.test/ip"]  # the lab web echoes the caller's address
WEBHOOK_EVENTS = (
    "checkout.session.completed",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
)


class DemoFailed(NorexError):
    """A step of the demo was not observed in time."""


class Clock:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.last = self.started

    def step(self, message: str) -> None:
        now = time.monotonic()
        click.echo(f"[{now - self.started:6.1f} s] (+{now - self.last:5.1f} s) {message}")
        self.last = now


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"not observed within {timeout:.0f} s: {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.3):
        return True
    return False


class Processes:
    """The demo's daemons; all stopped (and their output files removed with the work folder) at the end."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work, self.env, self.procs = work, env, {}

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        out = open(self.work / f"{name}.out", "wb")  # noqa: SIM115 - closed when the process is
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        out.close()
        self.procs[name] = proc
        return proc

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.work / f"{name}.out").read_text(errors="replace").strip().splitlines()[-3:]
                raise DemoFailed(f"{name} exited with status {proc.returncode}: {' | '.join(tail)}")

    def stop_one(self, name: str) -> None:
        _terminate([self.procs.pop(name)])

    def stop(self) -> None:
        _terminate(list(self.procs.values()))


def _terminate(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each process group, then SIGKILL whatever is still there after 15 s."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _same_address(seen: str, *addresses: str | None) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(seen) in {ipaddress.ip_address(a) for a in addresses if a}
    except ValueError:
        return False


def norex_cli() -> str:
    return str(Path(sys.executable).with_name("norex"))


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, check=False)


def register_webhook(api_base: str, url: str, secret: str) -> None:
    import httpx

    fields = {"url": url, "secret": secret, "events[]": list(WEBHOOK_EVENTS)}
    response = httpx.post(f"{api_base}/_config/webhooks/norex", data=fields, timeout=10)
    if response.status_code != 200:
        raise DemoFailed(f"the Stripe stand-in refused the webhook registration (HTTP {response.status_code})")


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="norex-demo-"))
    os.chmod(work, 0o700)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def demo(timeout: float = 600) -> None:
    if os.geteuid() != 0:
        raise MissingPrerequisite("norex demo needs root (the lab boots servers and makes network namespaces)")
    import stripe

    from norex.db.database import connect
    from norex.db.models import Customer, Server
    from norex.provision import control_plane_id
    from norex.provision.lab import LabProvisioner

    clock = Clock()
    with workspace() as work:
        stripe_port, web_port = free_port(), free_port()
        api_base = f"http://127.0.0.1:{stripe_port}"
        database = work / "norex.db"
        env = {
            **os.environ,
            "NOREX_DATABASE_URL": f"sqlite:///{database}",
            "NOREX_QUEUE_URL": f"sqlite:///{work / 'queue.db'}",
            "NOREX_STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(24),
            "NOREX_STRIPE_API_KEY": "sk_test_" + secrets.token_hex(12),
            "NOREX_STRIPE_API_BASE": api_base,
            "NOREX_BACKEND": "lab",
            "XDG_DATA_HOME": str(work),
        }
        procs = Processes(work, env)
        provisioner = LabProvisioner(control_plane_id(env["NOREX_DATABASE_URL"]))
        customer_id: str | None = None
        try:
            procs.start("stripe", [sys.executable, "-m", "norex.stripe_standin", str(stripe_port)])
            wait_for("the Stripe stand-in listening", lambda: port_open(stripe_port), 30)
            clock.step(f"Stripe stand-in (localstripe) on 127.0.0.1:{stripe_port}")
            procs.start("serve", [norex_cli(), "serve", "--port", str(web_port)])
            procs.start("worker", [norex_cli(), "worker"])
            wait_for("norex serve listening", lambda: procs.check() or port_open(web_port), 30)
            register_webhook(
                api_base, f"http://127.0.0.1:{web_port}/stripe/webhook", env["NOREX_STRIPE_WEBHOOK_SECRET"]
            )
            clock.step(f"norex serve on 127.0.0.1:{web_port} and norex worker (lab backend); webhook registered")

            client = stripe.StripeClient(env["NOREX_STRIPE_API_KEY"], base_addresses={"api": api_base})
            email = f"demo-{secrets.token_hex(4)}@example.test"
            product = client.v1.products.create(params={"name": "NorexVPN"})
            plan = client.v1.plans.create(
                params={"amount": 500, "currency": "eur", "interval": "month", "product": product.id}
            )
            customer = client.v1.customers.create(params={"email": email})
            card = client.v1.payment_methods.create(
                params={
                    "type": "card",
                    "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"},
                }
            )
            client.v1.payment_methods.attach(card.id, params={"customer": customer.id})
            client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": card.id}})
            subscription = client.v1.subscriptions.create(
                params={"customer": customer.id, "items": [{"plan": plan.id}]}
            )
            clock.step(f"customer subscribed with card 4242 (subscription {subscription.status})")

            db = connect(env["NOREX_DATABASE_URL"])

            def customer_row() -> Customer | None:
                procs.check()
                with db.read() as session:
                    return session.query(Customer).filter_by(stripe_customer_id=customer.id).one_or_none()

            row = wait_for("the signed webhook recorded the customer", customer_row, 60)
            customer_id = row.id
            clock.step(f"webhook recorded customer {customer_id} (desired server: {row.desired})")

            def server_ready() -> Server | None:
                procs.check()
                with db.read() as session:
                    server = session.get(Server, customer_id)
                    return server if server is not None and server.state == "ready" else None

            server = wait_for("the customer's server converged", server_ready, timeout)
            clock.step(f"server {server.name} provisioned and converged at {server.ipv4}")

            added = run([norex_cli(), "devices", "add", customer_id, DEMO_DEVICE, "--json"], env=env)
            if added.returncode != 0:
                raise DemoFailed(f"norex devices add failed: {added.stderr.strip()}")
            device = json.loads(added.stdout)
            config = work / "phone.conf"
            config.write_text(device["config"])
            config.chmod(0o600)

            def peer_on_server() -> bool:
                procs.check()
                peers = run([norex_cli(), "lab", "ssh", customer_id, "--", "wg", "show", "wg0", "peers"])
                return device["public_key"] in peers.stdout

            wait_for("the device added as a peer on the server", peer_on_server, timeout, interval=1)
            clock.step(f"device {DEMO_DEVICE} added ({device['ipv4']}); the server converged with its key")

            run([norex_cli(), "lab", "device", "down", DEMO_DEVICE])
            up = run([norex_cli(), "lab", "device", "up", DEMO_DEVICE, "--config", str(config)])
            if up.returncode != 0:
                raise DemoFailed(f"the lab device did not come up: {up.stderr.strip()}")
            look = run([norex_cli(), "lab", "device", "exec", DEMO_DEVICE, "--", "dig", "+time=5", "www.example.test"])
            if "status: NOERROR" not in look.stdout or "ANSWER SECTION" not in look.stdout:
                raise DemoFailed("the device could not resolve www.example.test through the tunnel")

            def web_sees_the_server() -> str | None:
                out = run([norex_cli(), "lab", "device", "exec", DEMO_DEVICE, "--", *CURL_IP]).stdout.strip()
                return out if _same_address(out, server.ipv4, server.ipv6) else None

            seen = wait_for("the lab web seeing the device's traffic come from the server", web_sees_the_server, 30)
            clock.step(
                f"device connected through WireGuard: resolved www.example.test; the web saw the server ({seen})"
            )
            run([norex_cli(), "lab", "device", "down", DEMO_DEVICE])

            client.v1.subscriptions.cancel(subscription.id)
            clock.step("subscription cancelled")

            def server_gone() -> bool:
                procs.check()
                with db.read() as session:
                    return session.get(Server, customer_id) is None and provisioner.find(customer_id) is None

            wait_for("the server destroyed", server_gone, timeout)
            clock.step(f"server {customer_id} destroyed")

            client.v1.customers.delete(customer.id)

            def erased() -> bool:
                procs.check()
                with db.read() as session:
                    return session.get(Customer, customer_id) is None

            wait_for("the customer erased", erased, 120)
            db.dispose()
            needle = email.encode()
            leftovers = [p.name for p in work.glob("norex.db*") if needle in p.read_bytes()]
            if leftovers:
                raise DemoFailed(f"the erased customer's email is still in {', '.join(leftovers)}")
            clock.step("customer deleted in Stripe: row erased, the email is in no byte of the database files")
        finally:
            procs.stop()
            run([norex_cli(), "lab", "device", "down", DEMO_DEVICE])
            if customer_id is not None:
                with contextlib.suppress(NorexError):
                    provisioner.destroy(customer_id)
    click.echo(f"demo: every step observed in {time.monotonic() - clock.started:.1f} s")
