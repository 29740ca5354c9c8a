"""The control plane end to end: localstripe's real signed webhooks, `norex serve`, `norex worker`, lab servers.

Everything runs as separate processes, as in production: the Stripe stand-in on loopback, the webhook
server, the worker (restarted by the tests, sometimes with a failpoint that makes it die at one step).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from norex.db.models import Server
from norex.demo.plane import CARD, LocalPlane
from norex.demo.processes import wait_for
from norex.provision import control_plane_id
from norex.provision.lab import LabProvisioner
from tests.conftest import lab_names, norex, on_server
from tests.unit.dashboard_support import Inbox, free_port

pytestmark = pytest.mark.lab

TIMEOUT = 420  # a first converge takes about a minute here; much more under a loaded CI machine


# One name of each category from the default sources' synthetic copies (norex/lab/data/lists).
DEFAULT_BLOCKED = {"ads": "banner.adaway-ads.test", "trackers": "telemetry.spy-trackers.test",
                   "malware": "drop.urlhaus-malware.test"}  # fmt: skip


class ControlPlane(LocalPlane):
    """The demo's local control plane (whose first converge builds the fleet's blocklist from the default sources'
    copies on the lab web site, as a control plane does with NOREX_BLOCKLIST_FILE unset), no past_due grace and
    its own TMPDIR, and
    the customer dashboard, whose login links go to a real SMTP server on loopback (aiosmtpd: self.inbox)."""

    def __init__(self, work: Path) -> None:
        (work / "tmp").mkdir()
        self.inbox = Inbox()
        self.smtp = Controller(self.inbox, hostname="127.0.0.1", port=free_port())
        super().__init__(
            work,
            {
                "NOREX_PAST_DUE_GRACE_SECONDS": "0",
                # The plane's own temporary folder: ansible-runner's private data and artifacts go there.
                "TMPDIR": str(work / "tmp"),
                "NOREX_SESSION_SECRET": secrets.token_urlsafe(32),
                "NOREX_SMTP_HOST": "127.0.0.1",
                "NOREX_SMTP_PORT": str(self.smtp.port),
            },
        )
        self.env["NOREX_DASHBOARD_URL"] = self.dashboard = f"http://127.0.0.1:{self.web_port}"
        self.customers: list[str] = []

    def start(self) -> None:
        self.smtp.start()
        super().start()
        # Switching to it bills at once (a new interval), which is how the stand-in charges again.
        self.yearly_plan = self.new_plan(5000, "year")

    def stop(self) -> None:
        super().stop()
        self.smtp.stop()

    def start_worker(self, failpoint: str | None = None) -> None:
        super().start_worker({"NOREX_FAILPOINT": failpoint} if failpoint else None)

    def worker_exit(self, timeout: float = TIMEOUT) -> int:
        return self.procs.procs["worker"].wait(timeout=timeout)

    def customer(self, email: str, payment_method: dict) -> tuple[object, object]:
        return self.subscribe(email, payment_method)

    def opaque_id(self, stripe_customer_id: str) -> str:
        row = self.wait_customer(stripe_customer_id)
        self.customers.append(row.id)
        return row.id

    def wait_ready(self, customer_id: str) -> Server:
        return super().wait_ready(customer_id, TIMEOUT)

    def wait_gone(self, customer_id: str) -> None:
        super().wait_gone(customer_id, TIMEOUT)
        assert customer_id not in lab_names()


GOOD_IBAN = {"type": "sepa_debit", "sepa_debit": {"iban": "DE89370400440532013000"}}
FAILING_IBAN = {"type": "sepa_debit", "sepa_debit": {"iban": "DE62370400440532013001"}}


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    work = tmp_path_factory.mktemp("control-plane")
    plane = ControlPlane(work)
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()
        provisioner = LabProvisioner(control_plane_id(plane.env["NOREX_DATABASE_URL"]))
        for customer_id in plane.customers:
            provisioner.destroy(customer_id)


def customers_json(plane: ControlPlane, *extra: str) -> dict[str, dict]:
    out = norex("customers", "list", "--json", *extra, env=plane.env).stdout
    return {row["id"]: row for row in json.loads(out)["customers"]}


def test_a_card_subscription_gets_a_converged_server_and_cancelling_destroys_it(plane):
    email = f"card-{secrets.token_hex(4)}@example.test"
    customer, subscription = plane.customer(email, CARD)
    cid = plane.opaque_id(customer.id)
    assert cid.startswith("c-") and customer.id not in cid
    server = plane.wait_ready(cid)
    assert on_server(cid, "wg show wg0 public-key").strip() == server.public_key
    zones = on_server(cid, "unbound-control -s /run/unbound.ctl list_local_zones")
    # The control plane's own build of the default sources reached the resolver, one name of each category.
    assert all(f"{name}. always_refuse" in zones for name in DEFAULT_BLOCKED.values()), zones
    manifest = json.loads((plane.work / "norex" / "blocklist" / "manifest.json").read_text())
    assert manifest["categories_without_source"] == [] and manifest["zone_type"] == "always_refuse"
    row = customers_json(plane)[cid]
    assert row["desired"] == "present" and row["server_state"] == "ready" and row["backend"] == "lab"
    assert server.ipv4 in row["addresses"] and "email" not in row
    assert customers_json(plane, "--show-email")[cid]["email"] == email
    # ansible-runner's private data and artifacts (facts, task results) did not outlive the run.
    assert list((plane.work / "tmp").glob("norex-run-*")) == []

    plane.stripe.v1.subscriptions.cancel(subscription.id)
    plane.wait_gone(cid)
    assert customers_json(plane)[cid]["desired"] == "absent"

    plane.stripe.v1.customers.delete(customer.id)
    wait_for("the customer erased", lambda: plane.row(customer.id) is None, 60)
    plane.db.dispose()
    for path in plane.work.glob("norex.db*"):
        assert email.encode() not in path.read_bytes(), path.name


def test_a_failed_sepa_payment_after_activation_destroys_the_server(plane):
    customer, subscription = plane.customer(f"sepa-{secrets.token_hex(4)}@example.test", GOOD_IBAN)
    cid = plane.opaque_id(customer.id)
    plane.wait_ready(cid)
    # The bank account changes to one whose debits fail; the next charge (a switch to yearly) bounces.
    failing = plane.stripe.v1.payment_methods.create(params=FAILING_IBAN)
    plane.stripe.v1.payment_methods.attach(failing.id, params={"customer": customer.id})
    plane.stripe.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": failing.id}})
    item = plane.stripe.v1.subscriptions.retrieve(subscription.id)["items"]["data"][0]
    plane.stripe.v1.subscriptions.update(
        subscription.id, params={"items": [{"id": item["id"], "plan": plane.yearly_plan.id}]}
    )
    plane.wait_gone(cid)


def test_a_worker_killed_at_any_step_is_repaired_by_the_next_one(plane):
    email = f"crash-{secrets.token_hex(4)}@example.test"
    plane.procs.stop_one("worker")
    plane.start_worker(failpoint="create")
    customer, subscription = plane.customer(email, CARD)
    cid = plane.opaque_id(customer.id)
    assert plane.worker_exit() == 70  # died just before creating the server
    assert cid not in lab_names()
    plane.start_worker(failpoint="converge")
    assert plane.worker_exit() == 70  # the restart's sweep created it, then died before converging
    assert cid in lab_names() and plane.server(cid).state == "converging"
    plane.start_worker()
    server = plane.wait_ready(cid)
    # One server, never a second: the plane's backend holds this customer's server and nothing else.
    assert LabProvisioner(control_plane_id(plane.env["NOREX_DATABASE_URL"])).existing() == {cid}
    assert on_server(cid, "wg show wg0 public-key").strip() == server.public_key

    plane.procs.stop_one("worker")
    plane.start_worker(failpoint="destroy")
    plane.stripe.v1.subscriptions.cancel(subscription.id)
    assert plane.worker_exit() == 70
    assert plane.server(cid).state == "destroying" and cid in lab_names()
    # Deleted in Stripe while the server still exists: the email goes at once, the row once it is destroyed.
    plane.stripe.v1.customers.delete(customer.id)
    wait_for("the email cleared", lambda: plane.row(customer.id).email is None, 60)
    plane.start_worker(failpoint="erase")
    assert plane.worker_exit() == 70  # destroyed the server, then died before erasing the row
    assert cid not in lab_names() and plane.server(cid) is None
    assert plane.row(customer.id) is not None
    plane.start_worker()
    wait_for("the customer erased", lambda: plane.row(customer.id) is None, 120)
    assert LabProvisioner(control_plane_id(plane.env["NOREX_DATABASE_URL"])).existing().isdisjoint(set(plane.customers))
