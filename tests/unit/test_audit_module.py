"""norex.vpn.audit's readings of nftables rules, on real `nft -j list ruleset` output from a namespace of its own
(root; nft from scripts/install.sh). `queue` is not among them: this kernel has no nfnetlink_queue to load it
into; the module names it the same way it names `log`. The checks themselves run on lab servers
(tests/integration/test_audit_lab.py)."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from tests.unit.test_claims import audit_module

RULES = """
table inet t {
  set agent_ipv4 {
    type ipv4_addr; flags interval;
    elements = { 198.18.0.1/32, 192.0.2.0/24 }
  }
  chain input {
    type filter hook input priority 0; policy drop;
    tcp dport 22 log prefix "ssh " accept
    tcp dport 8443 ip saddr { 198.51.100.7/32, 203.0.113.0/24 } accept
    tcp dport 8443 ip6 saddr 2001:db8::/48 accept
    udp dport 51820 accept
    tcp dport 9000 accept
    tcp dport 9443 ip saddr @agent_ipv4 accept
    meta l4proto icmp log group 3
  }
  chain forward {
    type filter hook forward priority 0;
    meta nftrace set 1
  }
}
table ip d {
  chain forward {
    type filter hook forward priority 0;
    ip daddr 198.18.0.80 dup to 198.18.0.99
  }
}
"""


@pytest.fixture(scope="module")
def ruleset():
    netns = f"norex-audit-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=RULES, text=True, check=True)
        out = subprocess.run(
            ["ip", "netns", "exec", netns, "nft", "-j", "list", "ruleset"], capture_output=True, text=True, check=True
        ).stdout
        yield json.loads(out)["nftables"]
    finally:
        subprocess.run(["ip", "netns", "delete", netns], check=False)


def rules(ruleset):
    return [item["rule"] for item in ruleset if "rule" in item]


def test_rules_that_record_or_copy_packets_are_named(ruleset):
    module = audit_module()
    found = [module.recording_expression(rule["expr"]) for rule in rules(ruleset)]
    assert found == ["log", "", "", "", "", "", "log", "nftrace", "dup"]  # log group N: nflog


def test_the_sources_a_port_is_open_to(ruleset):
    module = audit_module()
    agent = [rule for rule in rules(ruleset) if 8443 in module.dports(rule["expr"])]
    assert [sorted(map(str, module.saddrs(rule["expr"]))) for rule in agent] == [
        ["198.51.100.7/32", "203.0.113.0/24"],
        ["2001:db8::/48"],
    ]
    assert all(module.accepts(rule["expr"]) for rule in agent)
    wide = next(rule for rule in rules(ruleset) if 9000 in module.dports(rule["expr"]))
    assert module.saddrs(wide["expr"]) == []  # open to anywhere


def test_a_named_set_of_sources_is_read_from_its_table(ruleset):
    """The firewall role opens the agent's port to named sets (@agent_ipv4): their elements are the sources."""
    module = audit_module()
    rule = next(rule for rule in rules(ruleset) if 9443 in module.dports(rule["expr"]))
    assert sorted(map(str, module.saddrs(rule["expr"], module.sets_of_table(ruleset, rule)))) == [
        "192.0.2.0/24",
        "198.18.0.1/32",
    ]
    assert module.saddrs(rule["expr"]) == []  # without the table's sets, nothing narrows it


def test_journald_sizes_parse_as_journald_writes_them():
    module = audit_module()
    assert module.parse_size("16M") == 16 * 1024**2
    assert module.parse_size("512K") == 512 * 1024
    assert module.parse_size("1G") == 1024**3
    assert module.parse_size("4096") == 4096
    assert module.parse_size("lots") is None
