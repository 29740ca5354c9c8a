"""The server agent on the shared converged lab server: the unit, its port, mutual TLS, live status, and no
trace of a request anywhere on the server, after a reboot and a power-off too."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import time
import uuid

import pytest

from norex.agent.ca import AgentCA, fingerprint
from norex.agent.client import AgentClient, AgentError
from tests.conftest import AGENT_PORT, grep_on_server, norex, on_server, s_client_without_certificate


def pinned_client(converged, ca: AgentCA | None = None) -> AgentClient:
    certificate = on_server(converged["name"], "cat /etc/norex-agent/agent.crt")
    return AgentClient(
        converged["server"]["address"],
        AGENT_PORT,
        fingerprint(certificate.encode()),
        ca or converged["agent_ca"],
        label=converged["name"],
    )


def wait_online(client: AgentClient, public_key: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        peers = {p["public_key"]: p for p in client.status()["peers"]}
        if peers.get(public_key, {}).get("online"):
            return peers[public_key]
        assert time.monotonic() < deadline, f"{public_key[:8]}... not online within {timeout} s"
        time.sleep(1)


def test_the_agent_runs_hardened_and_reports_its_exposure(converged_server):
    name = converged_server["name"]
    assert on_server(name, "systemctl is-active norex-agent.service").strip() == "active"
    report = on_server(name, "systemd-analyze security --no-pager norex-agent.service")
    exposure = re.search(r"Overall exposure level for norex-agent.service: ([0-9.]+) (\w+)", report)
    assert exposure, report[-2000:]
    print(f"systemd-analyze security norex-agent.service: {exposure.group(1)} {exposure.group(2)}")
    assert float(exposure.group(1)) <= 2.0, report[-3000:]
    assert on_server(name, "stat -c '%a %U' /etc/norex-agent/agent.key").strip() == "600 root"


def test_the_phone_is_online_and_nothing_leaks_in_the_status(converged_server):
    client = pinned_client(converged_server)
    norex("lab", "device", "exec", converged_server["phone"], "--", "ping", "-c", "3", "-i", "0.2", "10.66.0.1")
    peer = wait_online(client, converged_server["phone_public_key"])
    assert peer["rx_bytes"] > 0
    text = json.dumps(client.status())
    assert "198.18.2." not in text and "endpoint" not in text and not re.search(r"\b1[0-9]{9}\b", text)


def test_the_port_is_closed_to_all_but_the_control_plane(converged_server):
    address = converged_server["server"]["address"]
    probe = norex(
        *("lab", "device", "exec", converged_server["phone"], "--"),
        *("timeout", "5", "bash", "-c", f"exec 3<>/dev/tcp/{address}/{AGENT_PORT}"),
        check=False,
    )
    assert probe.returncode != 0, "a lab device reached the agent port"


def test_only_our_ca_gets_past_the_handshake(converged_server, tmp_path):
    other = AgentCA(tmp_path / "other").ensure()
    with pytest.raises(AgentError):
        pinned_client(converged_server, other).health()
    assert set(pinned_client(converged_server).health()) == {"version", "uptime_seconds"}
    address = converged_server["server"]["address"]
    assert b"HTTP/1.1" not in s_client_without_certificate(address, AGENT_PORT).stdout


def endpoint_of(name: str, public_key: str) -> str:
    """The endpoint WireGuard on the server remembers for a peer (`(none)` once purged)."""
    endpoints = dict(line.split("\t") for line in on_server(name, "wg show wg0 endpoints").splitlines())
    return endpoints[public_key]


def test_a_quiet_device_leaves_no_address_and_comes_back(converged_server):
    """The role's real window (180 s) and purge interval (30 s): the device goes quiet (its packets dropped in
    its own namespace, as when it leaves coverage); within 180 s + 30 s the server no longer holds its
    address, and its next ping reconnects it."""
    name, phone, key = converged_server["name"], converged_server["phone"], converged_server["phone_public_key"]
    norex("lab", "device", "exec", phone, "--", "ping", "-c", "2", "-i", "0.2", "10.66.0.1")
    address = endpoint_of(name, key).rsplit(":", 1)[0]
    assert address.startswith("198.18.")
    quiet = ("nft", "add", "table", "inet", "quiet", ";", "add", "chain", "inet", "quiet", "out")
    policy = ("{ type filter hook output priority 0 ; policy drop ; }",)
    norex("lab", "device", "exec", phone, "--", *quiet, *policy)
    started = time.monotonic()
    try:
        while endpoint_of(name, key) != "(none)":
            assert time.monotonic() - started < 180 + 30 + 15, "the quiet device's endpoint was not purged"
            time.sleep(5)
        print(f"endpoint purged {time.monotonic() - started:.0f} s after the device went quiet")
        assert address not in on_server(name, "wg show wg0 dump")
        assert pinned_client(converged_server).status()["peers"][0]["online"] is False
    finally:
        norex("lab", "device", "exec", phone, "--", "nft", "delete", "table", "inet", "quiet")
    norex("lab", "device", "exec", phone, "--", "ping", "-c", "1", "-w", "30", "10.66.0.1")
    assert endpoint_of(name, key).startswith(address + ":")
    assert wait_online(pinned_client(converged_server), key)["online"] is True


def send_markers(converged, marker: str, tmp_path) -> None:
    """Requests whose path, headers and body carry the marker: over our certificate and another CA's."""
    address = converged["server"]["address"]
    good = pinned_client(converged)
    other = AgentCA(tmp_path / f"other-{marker[-6:]}").ensure()
    for ca in (good.ca, other):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.load_cert_chain(ca.client_certificate, ca.client_key)
        body = json.dumps({"peers": [{"public_key": marker, "addresses": [marker]}]})
        for request in (
            f"GET /{marker} HTTP/1.1\r\nHost: {marker}\r\nUser-Agent: {marker}\r\nConnection: close\r\n\r\n",
            f"PUT /v1/peers HTTP/1.1\r\nHost: x\r\nX-{marker}: 1\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n{body}",
        ):
            try:
                import socket

                with (
                    socket.create_connection((address, AGENT_PORT), timeout=5) as plain,
                    context.wrap_socket(plain) as tls,
                ):
                    tls.sendall(request.encode())
                    while tls.recv(65536):
                        pass
            except (OSError, ssl.SSLError):
                pass


def marker_hits(name: str, marker: str) -> str:
    disk = norex("lab", "disk", name).stdout.strip()
    found = subprocess.run(["grep", "-rlaF", marker, disk], capture_output=True, text=True, check=False).stdout
    journal = on_server(name, "journalctl -b --no-pager -o cat")
    files = grep_on_server(name, marker, "/run", "/etc/norex-agent", "/usr/lib/norex-agent", "/tmp", "/var")
    return (found + files).strip() + (" journal" if marker in journal else "")


@pytest.mark.restarts_shared_server
def test_no_request_leaves_a_trace_on_the_server(converged_server, tmp_path):
    name = converged_server["name"]
    marker = f"norexmarker{uuid.uuid4().hex}"
    send_markers(converged_server, marker, tmp_path)
    assert marker_hits(name, marker) == ""
    norex("lab", "restart", name)
    assert marker_hits(name, marker) == ""
    norex("lab", "stop", name)
    norex("lab", "start", name)
    assert marker_hits(name, marker) == ""
    assert on_server(name, "systemctl is-active norex-agent.service").strip() == "active"
