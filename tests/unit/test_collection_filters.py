"""The collection's input checks (plugins/filter/network.py): every bad input gets a clear, placed message."""

from __future__ import annotations

import base64
import importlib
import os
import sys
from pathlib import Path

import pytest

COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"


def load_filters(name: str):
    """plugins/filter/NAME.py as Ansible imports it, so its imports of the collection's plugin_utils resolve."""
    if str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))
    return importlib.import_module(f"ansible_collections.norex.vpn.plugins.filter.{name}")


net = load_filters("network")

S4, S6 = "10.66.0.0/24", "fd9a:3c41:7be2::/64"


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def peer(public_key: str, *addresses: str) -> dict:
    return {"public_key": public_key, "addresses": list(addresses)}


def test_wireguard_keys():
    assert net.wg_key_valid(key())
    assert net.wg_key_valid("A" * 43 + "=")
    for bad in ("A" * 42 + "B=", "not-a-key", "", None, 42, key()[:-1]):
        assert not net.wg_key_valid(bad)


def test_good_peers_pass():
    k1, k2 = key(), key()
    peers = [peer(k1, "10.66.0.2/32", "fd9a:3c41:7be2::2/128"), peer(k2, "10.66.0.3/32")]
    assert net.wg_peer_errors(peers, S4, S6) == []
    assert net.FilterModule().filters()["wg_peer_errors"] is net.wg_peer_errors


@pytest.mark.parametrize(
    ("peers", "fragment"),
    [
        ("peer-list-as-a-string", "wireguard_peers"),
        ([peer("not-a-key", "10.66.0.9/32")], "wireguard_peers[0].public_key"),
        ([peer(key(), "10.67.0.9/32")], "10.67.0.9"),
        ([peer(key(), "10.66.0.4/24")], "10.66.0.4/24"),
        ([peer(key(), "10.66.0.1/32")], "10.66.0.1"),
        ([peer(key(), "10.66.0.0/32")], "10.66.0.0"),
        ([peer(key(), "10.66.0.255/32")], "10.66.0.255"),
        ([peer(key(), "fd9a:3c41:7be2::1/128")], "fd9a:3c41:7be2::1"),
        ([peer(key(), "x/32")], "x/32"),
        ([{"addresses": ["10.66.0.2/32"]}], "public_key"),
    ],
)
def test_bad_peers_are_named_by_place(peers, fragment):
    errors = net.wg_peer_errors(peers, S4, S6)
    assert errors, peers
    assert any(fragment in e for e in errors), errors
    assert all("\n" not in e for e in errors)


def test_duplicates_are_found_and_keys_never_printed():
    k = key()
    dup_address = net.wg_peer_errors([peer(k, "10.66.0.2/32"), peer(key(), "10.66.0.2/32")], S4, S6)
    assert any("10.66.0.2" in e for e in dup_address)
    dup_key = net.wg_peer_errors([peer(k, "10.66.0.2/32"), peer(k, "10.66.0.3/32")], S4, S6)
    assert any("duplicate" in e.lower() for e in dup_key)
    assert not any(k in e for e in dup_key)


def test_cidr_lists():
    assert net.cidr_list_errors(["198.18.0.1/32", "fd4e:6f72:6578::1/128"], "firewall_ssh_cidrs") == []
    assert net.cidr_list_errors(["198.18.0.1/33"], "firewall_ssh_cidrs")
    assert net.cidr_list_errors([], "firewall_ssh_cidrs")
    assert net.cidr_list_errors(["0.0.0.0/0"], "firewall_ssh_cidrs")
    assert net.cidr_list_errors("198.18.0.1/32", "firewall_ssh_cidrs")
    assert net.cidrs_of_version(["198.18.0.1/32", "fd4e::1/128"], 6) == ["fd4e::1/128"]
    assert net.addr_in_cidrs("198.18.0.1", ["198.18.0.0/24"])
    assert not net.addr_in_cidrs("198.18.1.1", ["198.18.0.0/24"])


def test_host_addresses_of_a_subnet():
    assert net.net_host(S4) == "10.66.0.1"
    assert net.net_host(S6, 1, prefix=True) == "fd9a:3c41:7be2::1/64"


def test_seconds_maps_such_as_conntrack_timeouts():
    assert net.seconds_map_errors({"tcp_timeout_established": 1800, "udp_timeout": "30"}, "t") == []
    assert net.seconds_map_errors({"tcp_timeout_established": 432000}, "t") == [
        "t.tcp_timeout_established: 432000 is not a number of seconds from 1 to 86400"
    ]
    assert net.seconds_map_errors({"udp_timeout": 0, "icmp_timeout": True, "x": "soon"}, "t") == [
        "t.udp_timeout: 0 is not a number of seconds from 1 to 86400",
        "t.icmp_timeout: True is not a number of seconds from 1 to 86400",
        "t.x: 'soon' is not a number of seconds from 1 to 86400",
    ]
    assert net.seconds_map_errors({"../../x": 1}, "t") == ["t: '../../x' is not a setting name (a-z, 0-9 and _)"]
    assert net.seconds_map_errors([1800], "t") == ["t: expected a mapping of names to seconds, got list"]
