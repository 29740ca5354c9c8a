"""The server agent against a real WireGuard (wireguard-go) with a real device, in two network namespaces.

Not a lab server: the agent program alone, as the role installs it, driving `wg` in a namespace of its own,
while a device in another namespace pings through the tunnel. Peer sets applied without a restart, online
from the handshake, the endpoint purged after the quiet window and the device back on its next packet, a bad
set refused with the running peers untouched. Needs root (namespaces, TUN), wireguard-go and conntrack
(scripts/install.sh). The converge, the firewall and the marker scan over a server's disk are the lab tests'.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from norex.agent.ca import AgentCA, fingerprint, make_csr
from norex.devices.config import keypair

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "collections" / "ansible_collections" / "norex" / "vpn"
SUFFIX = uuid.uuid4().hex[:6]
NS_SERVER, NS_DEVICE = f"nxag-s-{SUFFIX}", f"nxag-d-{SUFFIX}"
IF_SERVER, IF_DEVICE = f"nxs{SUFFIX}", f"nxd{SUFFIX}"
PORT = 8443
QUIET = 4  # the agent's online window in this test (the role's default is 180 s)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, TUN)")


def sh(*argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, input=input, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc


def in_ns(ns: str, *argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", ns, *argv, check=check, input=input)


def wireguard_go(ns: str, iface: str) -> subprocess.Popen:
    Path(f"/var/run/wireguard/{iface}.sock").unlink(missing_ok=True)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, "setsid", "wireguard-go", "-f", iface],
        env={**os.environ, "LOG_LEVEL": "silent"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while in_ns(ns, "ip", "link", "show", iface, check=False).returncode != 0:
        assert time.monotonic() < deadline, f"wireguard-go did not make {iface}"
        time.sleep(0.1)
    return proc


def client(*calls: str) -> list:
    """Run AgentClient calls inside the server's namespace (where the agent listens on loopback)."""
    code = (
        "import json, sys; from pathlib import Path; from norex.agent.ca import AgentCA;"
        "from norex.agent.client import AgentClient, AgentError;"
        "a = json.loads(sys.argv[1]);"
        "c = AgentClient('127.0.0.1', a['port'], a['pin'], AgentCA(Path(a['ca'])));"
        "out = []\n"
        "for call in a['calls']:\n"
        "    name, _, arg = call.partition(' ')\n"
        "    try:\n"
        "        out.append(getattr(c, name)(*([json.loads(arg)] if arg else [])))\n"
        "    except AgentError as e:\n"
        "        out.append({'error': str(e)})\n"
        "print(json.dumps(out))"
    )
    args = json.dumps({"port": PORT, "pin": STATE["pin"], "ca": str(STATE["ca"].folder), "calls": list(calls)})
    return json.loads(in_ns(NS_SERVER, sys.executable, "-c", code, args).stdout)


STATE: dict = {}


@pytest.fixture(scope="module")
def tunnel(tmp_path_factory):
    for tool in ("wireguard-go", "wg", "conntrack"):
        assert shutil.which(tool), f"{tool} is missing (scripts/install.sh installs it)"
    work = tmp_path_factory.mktemp("agent-wg")
    procs: list[subprocess.Popen] = []
    sh("ip", "netns", "add", NS_SERVER)
    sh("ip", "netns", "add", NS_DEVICE)
    try:
        sh("ip", "link", "add", f"v{SUFFIX}s", "type", "veth", "peer", "name", f"v{SUFFIX}d")
        sh("ip", "link", "set", f"v{SUFFIX}s", "netns", NS_SERVER)
        sh("ip", "link", "set", f"v{SUFFIX}d", "netns", NS_DEVICE)
        for ns, link, address in ((NS_SERVER, "s", "198.18.250.1/30"), (NS_DEVICE, "d", "198.18.250.2/30")):
            in_ns(ns, "ip", "link", "set", "lo", "up")
            in_ns(ns, "ip", "address", "add", address, "dev", f"v{SUFFIX}{link}")
            in_ns(ns, "ip", "link", "set", f"v{SUFFIX}{link}", "up")
        server_private, server_public = keypair()
        device_private, device_public = keypair()
        procs.append(wireguard_go(NS_SERVER, IF_SERVER))
        procs.append(wireguard_go(NS_DEVICE, IF_DEVICE))
        in_ns(
            NS_SERVER, "wg", "set", IF_SERVER, "private-key", "/dev/stdin", "listen-port", "51820", input=server_private
        )
        in_ns(NS_SERVER, "ip", "address", "add", "10.66.0.1/24", "dev", IF_SERVER)
        in_ns(NS_SERVER, "ip", "link", "set", IF_SERVER, "up")
        in_ns(NS_DEVICE, "wg", "set", IF_DEVICE, "private-key", "/dev/stdin", input=device_private)
        in_ns(
            NS_DEVICE,
            *("wg", "set", IF_DEVICE, "peer", server_public, "endpoint", "198.18.250.1:51820"),
            *("allowed-ips", "10.66.0.0/24"),
        )
        in_ns(NS_DEVICE, "ip", "address", "add", "10.66.0.2/32", "dev", IF_DEVICE)
        in_ns(NS_DEVICE, "ip", "link", "set", IF_DEVICE, "up")
        in_ns(NS_DEVICE, "ip", "route", "add", "10.66.0.0/24", "dev", IF_DEVICE)

        lib = work / "lib"
        (lib / "norex_vpn").mkdir(parents=True)
        shutil.copy(COLLECTION / "roles/agent/files/norex_agent.py", lib)
        for name in ("inputs.py", "wg_peers.py"):
            shutil.copy(COLLECTION / "plugins/plugin_utils" / name, lib / "norex_vpn")
        (lib / "norex_vpn" / "__init__.py").write_text("")
        ca = AgentCA(work / "ca").ensure()
        key, csr = make_csr("norex-agent")
        (work / "agent.key").write_bytes(key)
        certificate = ca.sign_server(csr, "norex-agent", ["127.0.0.1"])
        (work / "agent.crt").write_bytes(certificate)
        head = "[Interface]\nAddress = 10.66.0.1/24, fd00:6e6f:7265::1/64\nListenPort = 51820\n"
        (work / "wg.conf").write_text(head)
        config = {
            "interface": IF_SERVER,
            "config_path": str(work / "wg.conf"),
            "ipv4_subnet": "10.66.0.0/24",
            "ipv6_subnet": "fd00:6e6f:7265::/64",
            "server_public_key": server_public,
            "online_seconds": QUIET,
            "purge_interval": 1,
            "listen": ["127.0.0.1"],
            "port": PORT,
            "certificate": str(work / "agent.crt"),
            "key": str(work / "agent.key"),
            "client_ca": str(ca.ca_certificate),
        }
        (work / "agent.json").write_text(json.dumps(config))
        stderr = (work / "stderr").open("wb")
        procs.append(
            subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    NS_SERVER,
                    "/usr/bin/python3",
                    str(lib / "norex_agent.py"),
                    str(work / "agent.json"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        )
        STATE.update(pin=fingerprint(certificate), ca=ca)
        deadline = time.monotonic() + 10
        while "error" in client("health")[0]:
            assert time.monotonic() < deadline, (work / "stderr").read_text()
            time.sleep(0.2)
        yield {"work": work, "device_public": device_public, "head": head, "stderr": work / "stderr"}
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        sh("ip", "netns", "delete", NS_DEVICE, check=False)
        sh("ip", "netns", "delete", NS_SERVER, check=False)


def peer_set(public_key: str, n: int = 2) -> dict:
    return {"peers": [{"public_key": public_key, "addresses": [f"10.66.0.{n}/32", f"fd00:6e6f:7265::{n}/128"]}]}


def ping(count: int = 3) -> bool:
    return in_ns(NS_DEVICE, "ping", "-c", str(count), "-i", "0.2", "-W", "1", "10.66.0.1", check=False).returncode == 0


def endpoints() -> str:
    return in_ns(NS_SERVER, "wg", "show", IF_SERVER, "endpoints").stdout


def test_a_peer_set_is_applied_and_the_device_shows_online(tunnel):
    applied = client("put_peers " + json.dumps(peer_set(tunnel["device_public"])["peers"]))[0]
    assert applied == {"added_or_changed": 1, "removed": 0, "peers": 1}
    assert tunnel["device_public"] in (tunnel["work"] / "wg.conf").read_text()
    assert (tunnel["work"] / "wg.conf").read_text().startswith(tunnel["head"])
    assert ping()
    status = client("status")[0]
    (peer,) = status["peers"]
    assert peer["public_key"] == tunnel["device_public"] and peer["online"] is True and peer["rx_bytes"] > 0
    text = json.dumps(status)
    assert "198.18.250.2" not in text and "endpoint" not in text and "handshake" not in text


def test_a_bad_set_leaves_the_running_peers_alone(tunnel):
    before = in_ns(NS_SERVER, "wg", "show", IF_SERVER, "allowed-ips").stdout
    bad = [{"public_key": tunnel["device_public"], "addresses": ["10.66.0.2/32", "10.66.0.2/32"]}]
    (answer,) = client("put_peers " + json.dumps(bad))
    assert "refused (400)" in answer["error"] and "duplicate" in answer["error"]
    assert in_ns(NS_SERVER, "wg", "show", IF_SERVER, "allowed-ips").stdout == before
    assert ping()


def test_a_quiet_device_leaves_no_address_and_comes_back_on_its_next_packet(tunnel):
    assert ping() and "198.18.250.2" in endpoints()
    deadline = time.monotonic() + QUIET + 10
    while "198.18.250.2" in endpoints():
        assert time.monotonic() < deadline, "the agent did not purge the quiet device's endpoint"
        time.sleep(0.5)
    assert client("status")[0]["peers"][0]["online"] is False
    # The device still holds a session the server forgot: it starts a new handshake once its packets go
    # unanswered for 15 s (WireGuard's keepalive + rekey timeouts). With the real window, 180 s (WireGuard's
    # reject-after time), a device's session has expired by the time of the purge and its next packet
    # starts a handshake at once.
    started = time.monotonic()
    reply = in_ns(NS_DEVICE, "ping", "-c", "1", "-w", "30", "10.66.0.1", check=False)
    assert reply.returncode == 0, "the device did not reconnect"
    print(f"reconnected after {time.monotonic() - started:.1f} s")
    assert client("status")[0]["peers"][0]["online"] is True


def test_removing_the_peer_stops_the_tunnel(tunnel):
    assert client("put_peers []")[0] == {"added_or_changed": 0, "removed": 1, "peers": 0}
    assert in_ns(NS_SERVER, "wg", "show", IF_SERVER, "peers").stdout.strip() == ""
    assert not ping(2)
    assert client("status")[0]["peers"] == []
    assert (tunnel["work"] / "wg.conf").read_text() == tunnel["head"]
    assert tunnel["device_public"] not in tunnel["stderr"].read_text()
