"""The resolver's inputs are checked on the controller, before any server changes (plugins/filter/dns.py)."""

from __future__ import annotations

import json
import sys

import pytest

from tests.unit.test_collection import _run, _tool
from tests.unit.test_collection_filters import load_filters

dns = load_filters("dns")
net = load_filters("network")

IANA = ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"
LAB = ". 3600 IN DS 53182 13 2 7d515f6e5bae8eeeb359f002804cdffad515a933a30fe665a5a49b0a32194b57"
HINTS = ".  3600000 IN NS a.root-servers.test.\na.root-servers.test. 3600000 IN A 198.18.0.10\n"


def test_good_inputs_pass():
    assert dns.trust_anchor_errors([IANA, LAB], "a") == []
    assert dns.root_hints_errors(HINTS, "h") == []
    assert dns.root_hints_errors("", "h") == []  # empty: Debian's hints
    assert dns.zone_name_errors(["test.", "onion.", "home.arpa."], "z") == []
    assert net.address_list_errors(["10.66.0.1", "fd9a:3c41:7be2::1"], "i") == []


@pytest.mark.parametrize(
    ("anchors", "fragment"),
    [
        ([], "is empty"),
        (IANA, "must be a list"),
        (["example.com. IN DS 1 8 2 " + "a" * 64], "a[0]: not a root DS record"),
        ([". IN DS 20326 8 2 ABCD"], "a type 2 digest has 64 hex digits"),
        ([". IN DS 99999 8 2 " + "a" * 64], "key tag 99999 is out of range"),
        ([". IN DS 1 8 9 " + "a" * 64], "unknown digest type 9"),
        ([IANA, 7], "a[1]: not a root DS record"),
    ],
)
def test_bad_trust_anchors(anchors, fragment):
    errors = dns.trust_anchor_errors(anchors, "a")
    assert any(fragment in e for e in errors), errors


@pytest.mark.parametrize(
    ("hints", "fragment"),
    [
        ("; only a comment\n", "needs at least one NS record"),
        (". IN NS a.\na. IN MX 10 b.\n", "line 2: not an NS, A or AAAA record"),
        ("a. 3600 IN A 192.0.2.1\n", "needs at least one NS record"),
        (["not", "text"], "must be the text"),
    ],
)
def test_bad_root_hints(hints, fragment):
    errors = dns.root_hints_errors(hints, "h")
    assert any(fragment in e for e in errors), errors


@pytest.mark.parametrize("zone", ["test", ".", "bad..zone.", "-x.", "a" * 64 + ".", "sp ace.", 3])
def test_bad_zone_names(zone):
    assert dns.zone_name_errors([zone], "z")


@pytest.mark.parametrize(
    ("addresses", "fragment"),
    [
        ("10.66.0.1", "must be a list"),
        (["10.66.0.1/24"], "is not an IP address"),
        (["resolver.example"], "is not an IP address"),
        (["127.0.0.1"], "is loopback"),
        (["::"], "every interface"),
        (["10.66.0.1", "10.66.0.1"], "i[1]: 10.66.0.1 is listed twice"),
    ],
)
def test_bad_listen_addresses(addresses, fragment):
    errors = net.address_list_errors(addresses, "i")
    assert any(fragment in e for e in errors), errors


def test_site_playbook_refuses_bad_resolver_inputs_before_connecting(tmp_path):
    """The input play fails on the controller: the (unreachable) host is never contacted."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "vpn_servers:\n  hosts:\n    nowhere:\n      ansible_host: 192.0.2.1\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
    )
    extra = tmp_path / "vars.json"
    extra.write_text(
        json.dumps(
            {
                "norex_ops_cidrs": ["198.18.0.1/32"],
                "wireguard_peers": [],
                "resolver_interfaces": ["10.66.0.1/24"],
                "resolver_cache_max_ttl": "forever",
                "resolver_blocklist_file": str(tmp_path / "missing.conf"),
            }
        )
    )
    result = _run([_tool("ansible-playbook"), "-i", str(inventory), "-e", f"@{extra}", "playbooks/site.yml"], tmp_path)
    assert result.returncode != 0
    out = result.stdout
    assert "resolver_interfaces[0]: '10.66.0.1/24' is not an IP address" in out
    assert "resolver_cache_max_ttl must be a whole number" in out
    assert "missing.conf is not a file on the controller" in out
    assert "UNREACHABLE" not in out and "Gathering Facts" not in out
