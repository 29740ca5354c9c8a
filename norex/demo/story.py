"""`norex demo`: the whole story on this machine, every step observed, with timings.

A customer subscribes with a test card on the Stripe stand-in; the signed webhook arrives; a lab server
is provisioned and converged; a lab device connects through WireGuard, resolves a name and reaches the
lab web through the server; the subscription is cancelled; the server is destroyed; the customer is
deleted and erased (the email is then in no byte of the database files). Exit status 0 only if every
step was seen.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from norex.db.models import Server
from norex.demo.plane import LocalPlane
from norex.demo.processes import Clock, DemoFailed, norex_cli, run, wait_for
from norex.errors import MissingPrerequisite, NorexError

DEMO_DEVICE = "demo-phone"
# An ad name in the lab web site's copy of AdAway's list (norex/lab/data/lists): the control plane's own build of
# the default sources, made at the first converge, blocks it.
AD_NAME = "banner.adaway-ads.test"
CURL_IP = ["curl", "-s", "-m", "5", "http://www.example.test/ip"]  # the lab web echoes the caller's address


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="norex-demo-"))
    os.chmod(work, 0o700)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _same_address(seen: str, *addresses: str | None) -> bool:
    try:
        return ipaddress.ip_address(seen) in {ipaddress.ip_address(a) for a in addresses if a}
    except ValueError:
        return False


def lab(plane: LocalPlane, *args: str) -> Any:
    return run([norex_cli(), "lab", *args], env=plane.env)


def add_device(plane: LocalPlane, customer_id: str, timeout: float) -> dict[str, Any]:
    """`norex devices add` (the peer set goes to the server's agent), then wait for the server to list the new peer."""
    added = run([norex_cli(), "devices", "add", customer_id, DEMO_DEVICE, "--json"], env=plane.env)
    if added.returncode != 0:
        raise DemoFailed(f"norex devices add failed: {added.stderr.strip()}")
    device = json.loads(added.stdout)

    def peer_on_server() -> bool:
        plane.procs.check()
        return device["public_key"] in lab(plane, "ssh", customer_id, "--", "wg", "show", "wg0", "peers").stdout

    wait_for("the device added as a peer on the server", peer_on_server, timeout, interval=1)
    return device


def connect_device(plane: LocalPlane, device: dict[str, Any], server: Server) -> str:
    """Bring the device up from its config; resolve through the tunnel; return the address the web saw."""
    config = plane.work / "phone.conf"
    config.write_text(device["config"])
    config.chmod(0o600)
    lab(plane, "device", "down", DEMO_DEVICE)
    up = lab(plane, "device", "up", DEMO_DEVICE, "--config", str(config))
    if up.returncode != 0:
        raise DemoFailed(f"the lab device did not come up: {up.stderr.strip()}")
    look = lab(plane, "device", "exec", DEMO_DEVICE, "--", "dig", "+time=5", "www.example.test")
    if "status: NOERROR" not in look.stdout or "ANSWER SECTION" not in look.stdout:
        raise DemoFailed("the device could not resolve www.example.test through the tunnel")
    blocked = lab(plane, "device", "exec", DEMO_DEVICE, "--", "dig", "+time=5", AD_NAME)
    if "status: REFUSED" not in blocked.stdout:
        raise DemoFailed(f"the resolver did not block {AD_NAME}, an ad name of the default sources' lab copies")

    def web_sees_the_server() -> str | None:
        out = lab(plane, "device", "exec", DEMO_DEVICE, "--", *CURL_IP).stdout.strip()
        return out if _same_address(out, server.ipv4, server.ipv6) else None

    return wait_for("the lab web seeing the device's traffic come from the server", web_sees_the_server, 30)


def demo(timeout: float = 600, image: str = "prepared") -> None:
    if os.geteuid() != 0:
        raise MissingPrerequisite("norex demo needs root (the lab boots servers and makes network namespaces)")
    if image == "prepared":
        # Built once per collection version, as production's snapshot is built before customers arrive: not
        # part of any customer's wait, so before the clock starts.
        from norex.lab.prepared import ensure_prepared_image, is_built

        if not is_built():
            started = time.monotonic()
            ensure_prepared_image(progress=lambda msg: click.echo(msg, err=True))
            click.echo(f"the lab's prepared image built in {time.monotonic() - started:.1f} s", err=True)
    clock = Clock()
    with workspace() as work:
        plane = LocalPlane(work, env={"NOREX_LAB_IMAGE": image})
        customer_id: str | None = None
        try:
            plane.start()
            clock.step(
                f"Stripe stand-in (localstripe) on 127.0.0.1:{plane.stripe_port}, norex serve on "
                f"127.0.0.1:{plane.web_port} and norex worker (lab backend); webhook registered"
            )
            email = f"demo-{secrets.token_hex(4)}@example.test"
            customer, subscription = plane.subscribe(email)
            clock.step(f"customer subscribed with card 4242 (subscription {subscription.status})")

            row = plane.wait_customer(customer.id)
            customer_id = row.id
            clock.step(f"webhook recorded customer {customer_id} (desired server: {row.desired})")

            server = plane.wait_ready(customer_id, timeout)
            clock.step(f"server {server.name} provisioned and converged at {server.ipv4}")

            device = add_device(plane, customer_id, timeout)
            clock.step(f"device {DEMO_DEVICE} added ({device['address4']}); the server's agent applied it, no converge")

            seen = connect_device(plane, device, server)
            clock.step(
                f"device connected through WireGuard: resolved www.example.test, {AD_NAME} refused (the default "
                f"blocklist); the web saw the server ({seen})"
            )
            lab(plane, "device", "down", DEMO_DEVICE)

            plane.stripe.v1.subscriptions.cancel(subscription.id)
            clock.step("subscription cancelled")
            plane.wait_gone(customer_id, timeout)
            clock.step(f"server {customer_id} destroyed")

            plane.stripe.v1.customers.delete(customer.id)
            plane.wait_erased(customer.id, 120)
            leftovers = plane.files_holding(email.encode())
            if leftovers:
                raise DemoFailed(f"the erased customer's email is still in {', '.join(leftovers)}")
            clock.step("customer deleted in Stripe: row erased, the email is in no byte of the database files")
        finally:
            plane.stop()
            lab(plane, "device", "down", DEMO_DEVICE)
            if customer_id is not None:
                with contextlib.suppress(NorexError):
                    plane.provisioner.destroy(customer_id)
    click.echo(f"demo: every step observed in {time.monotonic() - clock.started:.1f} s")
