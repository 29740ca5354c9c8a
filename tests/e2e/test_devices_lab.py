"""Live devices end to end: a paying customer's lab server with its agent; `norex devices` pushes peer sets to
the agent (no converge), a device from the printed config is online within 30 s, pings every 0.2 s lose
nothing while a second device is added and the first renamed, a removed device stops passing traffic and
shows offline, and after a reboot the peers are back and show offline until their next handshake."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from pathlib import Path
from urllib.parse import unquote_plus

import pytest

from norex.db.models import Customer, Server
from norex.demo.processes import wait_for
from tests.conftest import NOREX, grep_on_server, norex, on_server, reboot
from tests.e2e.test_control_plane_lab import DEFAULT_BLOCKED, TIMEOUT, ControlPlane, plane  # noqa: F401 - the module's plane fixture

pytestmark = pytest.mark.lab

PHONE, LAPTOP = "t-dev-phone", "t-dev-laptop"


def devices(cp: ControlPlane, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return norex("devices", *args, env=cp.env, check=check)


def listed(cp: ControlPlane, cid: str) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads(devices(cp, "list", cid, "--json").stdout)}


def up(cp: ControlPlane, lab_device: str, config: str) -> None:
    path = cp.work / f"{lab_device}.conf"
    path.write_text(config)
    path.chmod(0o600)
    norex("lab", "device", "down", lab_device, check=False)
    norex("lab", "device", "up", lab_device, "--config", str(path))


CHROMIUM = "/usr/bin/chromium"  # Debian's (scripts/install.sh); Playwright downloads no browser
TABLET = "t-dev-browser"
CARDS = {"good": "4242424242424242", "declined": "4000000000000002"}


class Browser:
    """One Chromium page for the module, every request to our origin recorded (URL and body)."""

    def __init__(self, page, origin: str, shots: Path) -> None:
        self.page, self.origin, self.shots = page, origin, shots
        self.sent: list[bytes] = []
        page.on("request", self.record)

    def record(self, request) -> None:
        if request.url.startswith(self.origin):
            self.sent.append(request.url.encode() + b" " + (request.post_data_buffer or b""))

    def decoded(self) -> list[str]:
        return [unquote_plus(body.decode(errors="replace")) for body in self.sent]

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def pay_with(self, number: str) -> None:
        """The stand-in's Stripe.js card form, filled as a customer does."""
        for field, value in (("number", number), ("exp_month", "12"), ("exp_year", "35"), ("cvc", "123"),
                             ("postal_code", "10115")):  # fmt: skip
            self.page.fill(f"#card input[placeholder={field}]", value)
        self.page.click("#card-form button[type=submit]")


@pytest.fixture(scope="module")
def browser(plane, tmp_path_factory):  # noqa: F811
    from playwright.sync_api import sync_playwright

    shots = tmp_path_factory.mktemp("screenshots")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = chromium.new_context(accept_downloads=True)
            yield Browser(context.new_page(), plane.dashboard, shots)
        finally:
            chromium.close()
            print(f"browser: screenshots in {shots}")


@pytest.fixture(scope="module")
def customer(plane, browser):  # noqa: F811
    """A customer who signs up in Chromium: the emailed link, a declined card first (a clear message, no
    server), then 4242 in the Stripe.js form; the account page shows the server being made, then ready."""
    email = f"devices-{secrets.token_hex(4)}@example.test"
    page, origin = browser.page, plane.dashboard
    started = time.monotonic()
    page.goto(f"{origin}/login")
    browser.shot("login")
    page.fill("#email", email)
    before = len(plane.inbox.messages)
    page.click("text=Email me a link")
    page.wait_for_selector("text=Check your email")
    browser.shot("login-sent")
    wait_for("the login email", lambda: len(plane.inbox.messages) > before, 30, interval=0.5)
    (link,) = re.findall(r"http://127\.0\.0\.1:\d+/login/[A-Za-z0-9_-]+", plane.inbox.messages[-1])
    page.goto(link)
    browser.shot("login-confirm")
    page.click("text=Log in to NorexVPN")
    page.wait_for_url(f"{origin}/account")
    page.click("#subscribe")
    page.wait_for_url(f"{origin}/subscribe")
    browser.shot("subscribe")
    browser.pay_with(CARDS["declined"])
    page.wait_for_selector("#card-error:has-text('Your card was declined')")
    browser.shot("subscribe-declined")
    with plane.db.read() as session:
        row = session.query(Customer).filter_by(email=email).one_or_none()
        assert row is None or (row.subscription_id is None and session.get(Server, row.id) is None)
    paid = time.monotonic()
    browser.pay_with(CARDS["good"])
    page.wait_for_url(f"{origin}/account", timeout=60000)
    browser.shot("account-server-being-made")

    def recorded() -> Customer | None:
        with plane.db.read() as session:
            row = session.query(Customer).filter_by(email=email).one_or_none()
            return row if row is not None and row.subscription_id else None

    row = wait_for("the signed webhook's subscription", recorded, 60)
    plane.customers.append(row.id)  # destroyed by the plane's teardown whatever happens next
    page.locator("#server-state").filter(has_text="ready").wait_for(timeout=TIMEOUT * 1000)
    ready = time.monotonic()
    print(f"browser: sign-up to a ready server {ready - started:.1f} s (payment to ready {ready - paid:.1f} s)")
    browser.shot("account-ready")
    # The card went to Stripe only: no request to our origin carried its number.
    for number in CARDS.values():
        assert not any(number in body or number[:4] + " " + number[4:8] in body for body in browser.decoded())
    cid, subscription_id, stripe_customer_id = row.id, row.subscription_id, row.stripe_customer_id
    server = plane.wait_ready(cid)
    assert server.agent_pin, "the converge reported no agent certificate"
    try:
        yield {"id": cid, "server": server, "email": email, "stripe_customer_id": stripe_customer_id}
    finally:
        for lab_device in (PHONE, LAPTOP, TABLET):
            norex("lab", "device", "down", lab_device, check=False)
        if plane.row(stripe_customer_id) is not None:  # the account was not closed by the last test
            plane.stripe.v1.subscriptions.cancel(subscription_id)
            plane.wait_gone(cid)


def test_a_device_is_online_within_30_s_and_others_change_without_a_loss(plane, customer):  # noqa: F811
    cid = customer["id"]
    started = time.monotonic()
    phone = json.loads(devices(plane, "add", cid, "Anna's iPhone", "--json").stdout)
    up(plane, PHONE, phone["config"])
    norex("lab", "device", "exec", PHONE, "--", "ping", "-c", "2", "-i", "0.2", "10.66.0.1")
    wait_for("the phone online", lambda: listed(plane, cid)["Anna's iPhone"]["online"] is True, 30, interval=1)
    print(f"device add to online: {time.monotonic() - started:.1f} s")
    for text in (devices(plane, "list", cid).stdout, devices(plane, "list", cid, "--json").stdout):
        # Live status only: no endpoint address (the lab devices are on 198.18.2.0/24), no timestamp.
        assert "Anna's iPhone" in text and "198.18." not in text and "endpoint" not in text
        assert not re.search(r"\b1[0-9]{9}\b|\d{4}-\d{2}-\d{2}|\d{2}:\d{2}:\d{2}|handshake", text), text
    pinger = subprocess.Popen(
        [NOREX, "lab", "device", "exec", PHONE, "--", "ping", "-i", "0.2", "-c", "50", "-W", "1", "10.66.0.1"],
        stdout=subprocess.PIPE,
        text=True,
        env=plane.env,
    )
    laptop = json.loads(devices(plane, "add", cid, "--json").stdout)  # a random two-word name
    devices(plane, "rename", cid, "Anna's iPhone", "Anna's old iPhone")
    out, _ = pinger.communicate(timeout=60)
    assert " 0% packet loss" in out, out
    assert set(listed(plane, cid)) == {"Anna's old iPhone", laptop["name"]}
    # The server knows keys and addresses only.
    assert grep_on_server(cid, "Anna", "/etc", "/run", "/var", "/tmp").strip() == ""


def test_a_removed_device_stops_and_shows_gone(plane, customer):  # noqa: F811
    cid = customer["id"]
    rows = listed(plane, cid)
    laptop = next(row for name, row in rows.items() if name != "Anna's old iPhone")
    up(plane, LAPTOP, json.loads(devices(plane, "add", cid, "spare", "--json").stdout)["config"])
    devices(plane, "remove", cid, "spare")
    time.sleep(2)
    probe = norex("lab", "device", "exec", LAPTOP, "--", "ping", "-c", "3", "-W", "1", "10.66.0.1", check=False)
    assert probe.returncode != 0
    assert "spare" not in listed(plane, cid) and laptop["name"] in listed(plane, cid)


def test_after_a_reboot_the_peers_are_back_and_offline_until_they_speak(plane, customer):  # noqa: F811
    cid = customer["id"]
    before = set(on_server(cid, "wg show wg0 peers").split())
    # The phone is switched off first: its config's PersistentKeepalive (25 s) would otherwise speak, and
    # handshake again, as soon as the server is back, racing the check below.
    norex("lab", "device", "down", PHONE)
    reboot(cid)
    wait_for(
        "the agent back after the reboot",
        lambda: (
            devices(plane, "list", cid, "--json", check=False).returncode == 0
            and all(row["online"] is not None for row in listed(plane, cid).values())
        ),
        60,
        interval=2,
    )
    assert set(on_server(cid, "wg show wg0 peers").split()) == before
    assert listed(plane, cid)["Anna's old iPhone"]["online"] is False
    norex("lab", "device", "up", PHONE, "--config", str(plane.work / f"{PHONE}.conf"))
    norex("lab", "device", "exec", PHONE, "--", "ping", "-c", "1", "-w", "30", "10.66.0.1")
    wait_for("the phone online again", lambda: listed(plane, cid)["Anna's old iPhone"]["online"] is True, 30)


def audit_status(cp: ControlPlane) -> tuple[int, dict[str, dict]]:
    proc = norex("audit", "status", "--json", env=cp.env, check=False)
    return proc.returncode, {row["customer"]: row for row in json.loads(proc.stdout)["servers"]}


def audit_due(cp: ControlPlane, cid: str) -> None:
    """As when the interval has passed: the latest audit made old, then a sweep (`norex reconcile`) queues one."""
    with cp.db.write() as session:
        session.get(Server, cid).audit_at = 0
    queued = json.loads(norex("reconcile", "--json", env=cp.env).stdout)["audits_queued"]
    assert queued == 1 or cp.server(cid).audit_at != 0  # or the worker's own sweep took it first


def test_the_worker_audits_repairs_a_failure_and_reports_a_second(plane, customer):  # noqa: F811
    cid = customer["id"]
    # Every converge is followed by an audit: the customer's server passed right after its first.
    wait_for("the audit after the converge", lambda: audit_status(plane)[1][cid]["verdict"] == "pass", 120)
    assert norex("customers", "list", "--json", env=plane.env).stdout.count('"audit": "pass"') >= 1

    # A rule that records packets: the scheduled audit fails, the re-converge it asks for removes the rule (its
    # ruleset is the only one), and the audit after that converge passes.
    on_server(cid, "nft add table inet tamper && nft add chain inet tamper in '{ type filter hook input priority 0"
              " ; }' && nft add rule inet tamper in log prefix tamper")  # fmt: skip
    audit_due(plane, cid)

    def repaired() -> bool:
        row = audit_status(plane)[1][cid]
        gone = "tamper" not in on_server(cid, "nft list tables")
        return gone and row["verdict"] == "pass" and row["failures_in_a_row"] == 0

    wait_for("the re-converge and a passing audit", repaired, 300, interval=3)

    # A capture tool no converge removes: fails, is re-converged, fails again: ops are told, once.
    on_server(cid, "printf '#!/bin/sh\\n' > /usr/local/bin/tcpdump && chmod 755 /usr/local/bin/tcpdump")
    try:
        audit_due(plane, cid)
        wait_for("a second failure", lambda: audit_status(plane)[1][cid]["failures_in_a_row"] >= 2, 300, interval=3)
        code, rows = audit_status(plane)
        assert code == 1 and rows[cid]["needs_ops"] and rows[cid]["failed"] == "capture.no_tools"
        output = (plane.work / "worker.out").read_text().splitlines()
        told = [line for line in output if "norex: worker: audit:" in line]
        assert told == [f"norex: worker: audit: {cid}: fails again after a re-converge: capture.no_tools"], told
    finally:
        on_server(cid, "rm -f /usr/local/bin/tcpdump")
    audit_due(plane, cid)
    wait_for("a passing audit after the repair", lambda: audit_status(plane)[1][cid]["verdict"] == "pass", 120)
    assert audit_status(plane)[0] == 0


def test_in_a_real_browser_a_device_is_made_without_its_private_key_reaching_us(plane, customer, browser):  # noqa: F811
    """On the devices page (the customer who signed up in Chromium), a device whose key pair WebCrypto makes there:
    its config downloaded, the lab device comes up from it and its dot turns online within one refresh; a blocked
    lookup through the tunnel raises the tally; removed, it goes. No request to our origin carries the private
    key, and no page names the device's own address."""
    cid, page, origin = customer["id"], browser.page, plane.dashboard
    page.goto(f"{origin}/devices")
    page.fill("#device-name", "Browser tablet")
    page.click("#add-device button[type=submit]")
    page.wait_for_selector("#new-device:not([hidden])")
    assert page.get_attribute("#qr", "src").startswith("data:image/")
    with page.expect_download() as download:
        page.click("#download")
    config = Path(download.value.path()).read_text()
    browser.shot("device-added")
    private = re.search(r"^PrivateKey = (\S{44})$", config, re.M).group(1)
    public = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True).stdout.strip()
    device = listed(plane, cid)["Browser tablet"]
    assert device["public_key"] == public
    # Neither raw nor form-encoded did the private key go to our origin; the public key did.
    decoded = browser.decoded()
    assert not any(private in body for body in decoded)
    assert any(public in body for body in decoded)
    up(plane, TABLET, config)
    norex("lab", "device", "exec", TABLET, "--", "ping", "-c", "2", "-w", "20", "10.66.0.1")
    started = time.monotonic()
    page.wait_for_selector(f'tr[data-device="{device["id"]}"] .dot.online', timeout=25000)
    print(f"browser: the new device's dot online {time.monotonic() - started:.1f} s after its first ping")
    browser.shot("devices-online")
    # A blocked name looked up through the tunnel: the tally on the page rises within a refresh.
    blocked = int(page.inner_text("#blocked"))
    lookup = ("dig", "+time=3", "+tries=1", "@10.66.0.1", DEFAULT_BLOCKED["ads"])
    assert "REFUSED" in norex("lab", "device", "exec", TABLET, "--", *lookup, check=False).stdout
    # (Polled from here: the page's CSP forbids the string evaluation wait_for_function would use.)
    wait_for("the tally rising on the page", lambda: int(page.inner_text("#blocked")) > blocked, 25, interval=0.5)
    # The default sources (their lab copies, fetched by the control plane's build): a name of each category.
    for category, name in DEFAULT_BLOCKED.items():
        answer = norex("lab", "device", "exec", TABLET, "--", "dig", "+time=3", "+tries=1", "@10.66.0.1", name).stdout
        assert "status: REFUSED" in answer, (category, name)
    # No page or answer of ours names the device's own address (its endpoint).
    uplink = json.loads(norex("lab", "device", "list", "--json").stdout)
    address = next(d["address"] for d in uplink if d["name"] == TABLET)
    assert address not in page.content() and address not in page.request.get(f"{origin}/devices/status").text()
    page.click(f'tr[data-device="{device["id"]}"] >> text=Remove')
    browser.shot("device-remove")
    page.click("button:has-text('Remove Browser tablet')")
    page.wait_for_url(f"{origin}/devices")
    assert "Browser tablet" not in listed(plane, cid)
    time.sleep(2)
    probe = norex("lab", "device", "exec", TABLET, "--", "ping", "-c", "3", "-W", "1", "10.66.0.1", check=False)
    assert probe.returncode != 0
    norex("lab", "device", "down", TABLET, check=False)


def test_in_a_real_browser_billing_shows_the_card_and_closing_the_account_erases_it(plane, customer, browser):  # noqa: F811
    """Last in this module: the billing page (plan, card on file, an invoice), then closing the account with
    its confirmation: cancelled and deleted at Stripe, the server destroyed, the row erased, and the email in no
    byte of the database files."""
    page, origin = browser.page, plane.dashboard
    page.goto(f"{origin}/billing")
    page.wait_for_selector("#card-on-file:has-text('ending in 4242')")
    assert page.locator("#invoices tbody tr").count() >= 1
    browser.shot("billing")
    page.goto(f"{origin}/what-we-store")
    page.wait_for_selector("text=What we store")
    browser.shot("what-we-store")
    page.goto(f"{origin}/close")
    browser.shot("close")
    page.click("button:has-text('Close my account')")
    page.wait_for_selector("text=Your account is closed")
    browser.shot("closed")
    plane.wait_gone(customer["id"])
    plane.wait_erased(customer["stripe_customer_id"], 120)
    assert plane.files_holding(customer["email"].encode()) == []
    assert not plane.stripe.v1.customers.list(params={"email": customer["email"]}).data
