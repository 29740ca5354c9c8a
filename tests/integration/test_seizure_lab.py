"""The seizure test: use the shared converged lab server as a customer does, then search it as whoever seizes it
would, running and powered off. Only the places the audit documents as bounded live state hold anything of a
device's activity (norex.collection.audit_claims.LIVE_STATE); the disk holds none of it, and of the devices
only the current ones' public keys and tunnel addresses, in the interface's config (CONFIGURATION)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from norex.agent.ca import fingerprint
from norex.agent.client import AgentClient
from norex.collection import audit_claims
from norex.devices.config import client_config
from norex.lab import plan
from norex.lab.servers import paths
from tests.conftest import AGENT_PORT, norex, on_server, wg_keypair
from tests.integration import seizure_scan

pytestmark = pytest.mark.lab

TABLET = "t-seize-tablet"
TABLET4, TABLET6 = "10.66.0.77", "fd9a:3c41:7be2::4d"
SCANNER = Path(seizure_scan.__file__).read_text()


def agent(converged) -> AgentClient:
    certificate = on_server(converged["name"], "cat /etc/norex-agent/agent.crt")
    address = converged["server"]["address"]
    return AgentClient(address, AGENT_PORT, fingerprint(certificate.encode()), converged["agent_ca"], label="seize")


def endpoint_of(name: str, public_key: str) -> str:
    """The address WireGuard last saw the peer at (its home address), as `wg show` gives it."""
    for line in on_server(name, "wg show wg0 endpoints").splitlines():
        key, _, endpoint = line.partition("\t")
        if key == public_key and endpoint != "(none)":
            return endpoint.rsplit(":", 1)[0].strip("[]")
    raise AssertionError(f"no endpoint for {public_key[:8]}...")


def on_device(device: str, *argv: str, check: bool = True) -> str:
    return norex("lab", "device", "exec", device, "--", *argv, check=check).stdout


def use_like_a_customer(converged) -> dict[str, tuple[str, str]]:
    """Tunnel traffic, lookups, a device added and removed through the agent, an operator's SSH login. Returns
    what must not be found outside the documented places: label -> (value, kind), and the kinds' classes."""
    name, phone = converged["name"], converged["phone"]
    tag = uuid.uuid4().hex[:12]
    # The server may just have been rebooted by an earlier test: the phone's tunnel comes back at its next
    # handshake (WireGuard retries within about 20 s).
    on_device(phone, "ping", "-c", "1", "-w", "60", "10.66.0.1")
    allowed, blocked = f"seize{tag}.example.test", f"seize{tag}.ads.example.test"
    host, path = f"seize{tag}host.example.test", f"/seize{tag}path"
    on_device(phone, "dig", "+time=5", "+tries=2", "@10.66.0.1", allowed)
    answer = on_device(phone, "dig", "+time=5", "+tries=2", "+short", "@10.66.0.1", blocked)
    assert answer.strip() in ("", "0.0.0.0"), answer  # blocked: no address of the name
    on_device(phone, "dig", "+time=5", "+tries=2", "+short", "@10.66.0.1", "www.example.test", "AAAA")
    for url in (f"http://{plan.WEB4}{path}", f"http://[{plan.WEB6}]{path}"):
        on_device(phone, "curl", "-sS", "-g", "--max-time", "10", "-o", "/dev/null", "-H", f"Host: {host}", url)
    phone_endpoint = endpoint_of(name, converged["phone_public_key"])

    # A second device, added through the agent, used, then removed.
    client = agent(converged)
    phone_peer = {"public_key": converged["phone_public_key"], "addresses": ["10.66.0.2/32", "fd9a:3c41:7be2::2/128"]}
    private, public = wg_keypair()
    client.put_peers([phone_peer, {"public_key": public, "addresses": [f"{TABLET4}/32", f"{TABLET6}/128"]}])
    server_public = on_server(name, "wg show wg0 public-key").strip()
    config = converged["work"] / "tablet.conf"
    config.write_text(client_config(private, TABLET4, TABLET6, server_public, converged["server"]["address"]))
    norex("lab", "device", "down", TABLET, check=False)
    norex("lab", "device", "up", TABLET, "--config", str(config))
    try:
        on_device(TABLET, "ping", "-c", "2", "-w", "20", "10.66.0.1")
        tablet_endpoint = endpoint_of(name, public)
    finally:
        norex("lab", "device", "down", TABLET)
    client.put_peers([phone_peer])
    assert public not in on_server(name, "wg show wg0 peers")
    on_server(name, "true")  # an operator's login over SSH from the ops network
    return {
        "canary name looked up": (allowed, "name", "activity"),
        "canary name blocked": (blocked, "name", "activity"),
        "canary Host header": (host, "name", "activity"),
        "canary URL path": (path, "text", "activity"),
        "phone's endpoint address": (phone_endpoint, "address", "activity"),
        "tablet's endpoint address": (tablet_endpoint, "address", "activity"),
        "web site's address": (plan.WEB4, "address", "activity"),
        "phone's flow to the web site": (f"10.66.0.2>{plan.WEB4}", "flow", "activity"),
        "server's flow to the web site": (f"{converged['server']['address']}>{plan.WEB4}", "flow", "activity"),
        "phone's flow to the server": (f"{phone_endpoint}>{converged['server']['address']}", "flow", "activity"),
        "tablet's flow to the server": (f"{tablet_endpoint}>{converged['server']['address']}", "flow", "activity"),
        "web site's IPv6 address": (plan.WEB6, "address", "activity"),
        "phone's public key": (converged["phone_public_key"], "key", "configuration"),
        "phone's tunnel address": ("10.66.0.2", "address", "configuration"),
        "phone's tunnel IPv6 address": ("fd9a:3c41:7be2::2", "address", "configuration"),
        "removed tablet's public key": (public, "key", "removed"),
        "removed tablet's tunnel address": (TABLET4, "address", "removed"),
        "removed tablet's tunnel IPv6 address": (TABLET6, "address", "removed"),
    }


def needles(values: dict[str, tuple[str, str, str]]) -> dict[str, str]:
    found = {}
    for label, (value, kind, _) in values.items():
        made = seizure_scan.flow(label, *value.split(">")) if kind == "flow" else seizure_scan.forms(label, value, kind)
        found |= {raw.hex(): form for raw, form in made.items()}
    return found


def value_of(form: str) -> str:
    return form.split(" (", 1)[0]


def report(title: str, result: dict, seconds: float) -> None:
    total = sum(result["bytes"].values())
    print(
        f"\nseizure test, {title}: {total / 2**20:.1f} MiB in {sum(result['places'].values())} places, {seconds:.1f} s"
    )
    for kind, count in result["places"].items():
        print(f"  {kind}: {count} places, {result['bytes'].get(kind, 0) / 2**20:.1f} MiB")
    for place, labels in result["hits"].items():
        print(f"  hit: {place}: {', '.join(labels)}")
    for skipped in result["skipped"][:20]:
        print(f"  not read: {skipped}")


@pytest.mark.restarts_shared_server
def test_a_seized_server_holds_nothing_usable(converged_server):
    name = converged_server["name"]
    values = use_like_a_customer(converged_server)
    kinds = {label: kind for label, (_, _, kind) in values.items()}
    search = needles(values)

    # Powered on, a root shell: everything it can read.
    started = time.monotonic()
    program = SCANNER + f"\nprint(json.dumps(running({search!r})))\n"
    proc = norex("lab", "ssh", name, "--", "python3 -I -B -", input=program)
    running = json.loads(proc.stdout)
    report("powered on (a root shell)", running, time.monotonic() - started)
    assert running["bytes"]["files"] > 100 * 2**20 and running["places"]["process environments and command lines"]
    unread = {skipped.split(":", 1)[0] for skipped in running["skipped"]}
    assert not unread & {"journal", "ss", "wg show", "unbound-control dump_cache"}, running["skipped"]
    wrong = {}
    for place, forms in running["hits"].items():
        for form in forms:
            kind = kinds[value_of(form)]
            allowed = set(audit_claims.LIVE_STATE)
            if kind == "configuration":
                allowed |= set(audit_claims.CONFIGURATION)
            if place not in allowed:
                wrong.setdefault(place, []).append(form)
    assert not wrong, wrong
    # The live state does hold what the audit says it bounds (so the search would see it elsewhere too).
    assert "phone's endpoint address" in {value_of(f) for f in running["hits"].get("wg show", [])}
    assert "canary name looked up" in {value_of(f) for f in running["hits"].get("unbound-control dump_cache", [])}
    assert "phone's public key" in {value_of(f) for f in running["hits"].get("/etc/wireguard/wg0.conf", [])}

    # Powered off: the disk (the writable layer and the image it is a clone of), and the console.
    norex("lab", "stop", name)
    try:
        started = time.monotonic()
        disk = seizure_scan.Search(search)
        disk.tree("the server's own disk", str(paths(name)["upper"]), shown_as="")
        disk.tree("the image", Path(paths(name)["lower"].read_text().strip()).as_posix(), shown_as="image:")
        disk.file("the console", str(paths(name)["console"]), "console")
        offline = disk.result()
        report("powered off (its disk)", offline, time.monotonic() - started)
    finally:
        norex("lab", "start", name)
    (config,) = audit_claims.CONFIGURATION
    wrong = {
        place: forms
        for place, forms in offline["hits"].items()
        if place != config or any(kinds[value_of(f)] != "configuration" for f in forms)
    }
    assert not wrong, wrong
    assert "phone's public key" in {value_of(f) for f in offline["hits"].get(config, [])}
    assert offline["bytes"]["the image"] > 100 * 2**20 and offline["bytes"]["the server's own disk"] > 0
