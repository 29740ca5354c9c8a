"""The server agent against a real WireGuard (wireguard-go) with a real device, in two network namespaces.

Not a lab server: the agent program alone, as the role installs it, driving `wg` in a namespace of its own,
while a device in another namespace pings through the tunnel (tests/agent_rig.py). Peer sets applied without
a restart, online from the handshake, the endpoint purged after the quiet window and the device back, a bad
set refused with the running peers untouched. Needs root, wireguard-go and conntrack (scripts/install.sh).
The converge, the firewall and the marker scan over a server's disk are the lab tests'.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.agent_rig import DEVICE_ADDRESS, AgentRig, device_peer

QUIET = 4  # the agent's online window in this test (the role's default is 180 s)


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    with AgentRig(tmp_path_factory.mktemp("agent-wg"), online_seconds=QUIET, purge_interval=1) as rig:
        yield rig


def put(rig: AgentRig, peers: list) -> dict:
    return rig.call("put_peers " + json.dumps(peers))[0]


def test_a_peer_set_is_applied_and_the_device_shows_online(rig):
    assert put(rig, [device_peer(rig.device_public, 2)]) == {"added_or_changed": 1, "removed": 0, "peers": 1}
    written = rig.config_path.read_text()
    assert written.startswith(rig.head) and rig.device_public in written
    assert rig.ping()
    status = rig.call("status")[0]
    (peer,) = status["peers"]
    assert peer["public_key"] == rig.device_public and peer["online"] is True and peer["rx_bytes"] > 0
    text = json.dumps(status)
    assert DEVICE_ADDRESS not in text and "endpoint" not in text and "handshake" not in text


def test_a_bad_set_leaves_the_running_peers_alone(rig):
    before = rig.wg("allowed-ips")
    bad = [{"public_key": rig.device_public, "addresses": ["10.66.0.2/32", "10.66.0.2/32"]}]
    answer = put(rig, bad)
    assert "refused (400)" in answer["error"] and "duplicate" in answer["error"]
    assert rig.wg("allowed-ips") == before
    assert rig.ping()


def test_a_quiet_device_leaves_no_address_and_comes_back(rig):
    assert rig.ping() and DEVICE_ADDRESS in rig.endpoints()
    deadline = time.monotonic() + QUIET + 10
    while DEVICE_ADDRESS in rig.endpoints():
        assert time.monotonic() < deadline, "the agent did not purge the quiet device's endpoint"
        time.sleep(0.5)
    assert rig.call("status")[0]["peers"][0]["online"] is False
    # The device still holds a session the server forgot: it starts a new handshake once its packets go
    # unanswered for 15 s (WireGuard's keepalive + rekey timeouts). With the real window, 180 s (WireGuard's
    # reject-after time), a device's session has expired by the time of the purge and its next packet
    # starts a handshake at once.
    reply = rig.run(rig.device_ns, "ping", "-c", "1", "-w", "30", "10.66.0.1", check=False)
    assert reply.returncode == 0, "the device did not reconnect"
    assert rig.call("status")[0]["peers"][0]["online"] is True


def test_removing_the_peer_stops_the_tunnel(rig):
    assert put(rig, []) == {"added_or_changed": 0, "removed": 1, "peers": 0}
    assert rig.wg("peers").strip() == ""
    assert not rig.ping(2)
    assert rig.call("status")[0]["peers"] == []
    assert rig.config_path.read_text() == rig.head
    assert rig.device_public not in rig.stderr.read_text()
