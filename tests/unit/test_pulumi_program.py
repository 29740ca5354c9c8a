"""The real Pulumi program under Pulumi's own mocks: every input of every resource, outputs, no personal data."""

from __future__ import annotations

import importlib
import json
import runpy
import sys
from pathlib import Path

import pulumi
import pytest
import yaml

PULUMI = Path(__file__).resolve().parents[2] / "pulumi"
sys.path[:0] = [str(PULUMI), str(PULUMI / "policy")]
cloud_init = importlib.import_module("norex_pulumi.cloud_init")
config = importlib.import_module("norex_pulumi.config")
customer_server = importlib.import_module("norex_pulumi.customer_server")
program = importlib.import_module("norex_pulumi.program")
testing = importlib.import_module("norex_pulumi.testing")
policies = importlib.import_module("norex_policies")

COMPONENT = "norex:hcloud:CustomerServer"
SERVER = "hcloud:index/server:Server"
FIREWALL = "hcloud:index/firewall:Firewall"
BASE = {"customerId": "c-3f9a1c7e", "opsCidrs": ["203.0.113.0/24"], "opsSshKeyIds": [4711, 4712]}
# What the control plane knows about this customer and must never hand to the provider.
PERSONAL = ("alice.customer@example.com", "cus_Q9x8ABCdef1234", "sub_1PqRsTuVwXyZ0123")


@pytest.fixture(scope="module")
def default_run():
    return testing.run_program(BASE)


def test_three_resources_a_component_with_a_firewall_and_a_server(default_run):
    types = [(r.type, r.name, r.custom) for r in default_run.registrations]
    assert types == [
        (COMPONENT, "customer", False),
        (FIREWALL, "customer-firewall", True),
        (SERVER, "customer-server", True),
    ]
    component = default_run.one(COMPONENT)
    assert default_run.one(FIREWALL).parent == component.urn
    assert default_run.one(SERVER).parent == component.urn


def test_every_server_input(default_run):
    firewall = default_run.one(FIREWALL)
    assert default_run.one(SERVER).inputs == {
        "name": "norex-c-3f9a1c7e",
        "serverType": "cx23",
        "location": "fsn1",
        "image": "debian-12",
        "allowDeprecatedImages": False,
        "backups": False,
        "deleteProtection": True,
        "rebuildProtection": True,
        "labels": {"norex-customer": "c-3f9a1c7e", "managed-by": "norex"},
        "sshKeys": ["4711", "4712"],
        "publicNets": [{"ipv4Enabled": True, "ipv6Enabled": True}],
        "firewallIds": [int(firewall.id)],
        "userData": cloud_init.render(),
    }


def test_firewall_is_attached_at_creation(default_run):
    """The server is created with firewall_ids, after its firewall exists; there is no FirewallAttachment."""
    firewall, server = default_run.one(FIREWALL), default_run.one(SERVER)
    assert server.inputs["firewallIds"] == [int(firewall.id)]
    assert server.dependencies == [firewall.urn]
    assert not [r for r in default_run.registrations if "firewallAttachment" in r.type]


def test_exact_firewall_rules(default_run):
    assert default_run.one(FIREWALL).inputs == {
        "name": "norex-c-3f9a1c7e",
        "labels": {"norex-customer": "c-3f9a1c7e", "managed-by": "norex"},
        "rules": [
            {
                "description": "WireGuard",
                "direction": "in",
                "protocol": "udp",
                "port": "51820",
                "sourceIps": ["0.0.0.0/0", "::/0"],
            },
            {
                "description": "SSH from ops and the control plane",
                "direction": "in",
                "protocol": "tcp",
                "port": "22",
                "sourceIps": ["203.0.113.0/24"],
            },
            {
                "description": "norex agent from ops and the control plane",
                "direction": "in",
                "protocol": "tcp",
                "port": "8443",
                "sourceIps": ["203.0.113.0/24"],
            },
            {"description": "ICMP", "direction": "in", "protocol": "icmp", "sourceIps": ["0.0.0.0/0", "::/0"]},
        ],
    }


def test_creation_only_inputs_never_replace_a_running_server(default_run):
    server = default_run.one(SERVER)
    assert server.ignore_changes == ["userData", "image", "sshKeys"]
    assert server.delete_before_replace is True


def test_outputs(default_run):
    assert default_run.outputs == {
        "serverId": default_run.one(SERVER).id,
        "ipv4": testing.MOCK_IPV4,
        "ipv6": testing.MOCK_IPV6,
    }


def test_config_drives_type_location_ports_protection_and_cidrs():
    run = testing.run_program(
        {
            **BASE,
            "serverType": "cpx21",
            "location": "ash",
            "image": "987654321",
            "protection": False,
            "wireguardPort": 443,
            "agentPort": 9443,
            "opsCidrs": ["203.0.113.0/24", "2001:db8:aa::/48"],
            "controlPlaneCidrs": ["198.51.100.7/32"],
        }
    )
    server = run.one(SERVER).inputs
    assert (server["serverType"], server["location"], server["image"]) == ("cpx21", "ash", "987654321")
    assert (server["deleteProtection"], server["rebuildProtection"], server["backups"]) == (False, False, False)
    rules = {(r["protocol"], r.get("port")): r["sourceIps"] for r in run.one(FIREWALL).inputs["rules"]}
    management = ["203.0.113.0/24", "2001:db8:aa::/48", "198.51.100.7/32"]
    assert rules == {
        ("udp", "443"): ["0.0.0.0/0", "::/0"],
        ("tcp", "22"): management,
        ("tcp", "9443"): management,
        ("icmp", None): ["0.0.0.0/0", "::/0"],
    }


def test_no_input_anywhere_holds_personal_data(default_run):
    everything = json.dumps([r.inputs for r in default_run.registrations] + [default_run.outputs], default=str)
    for value in PERSONAL:
        assert value not in everything
    for registration in default_run.registrations:
        for path, text in policies._strings(registration.inputs):
            assert policies.find_personal_data(text) == [], f"{registration.type} {path}"


def test_user_data_is_the_same_for_every_customer(default_run):
    other = testing.run_program({**BASE, "customerId": "c-00ff00ff00ff"})
    assert other.one(SERVER).inputs["userData"] == default_run.one(SERVER).inputs["userData"]
    assert "c-3f9a1c7e" not in default_run.one(SERVER).inputs["userData"]


def test_the_policy_pack_passes_the_real_program(default_run):
    """The same inputs CrossGuard would see: every policy, every resource, no violation."""
    for registration in default_run.registrations:
        args = type("Args", (), {"resource_type": registration.type, "props": registration.inputs})()
        for name, (validate, _) in policies.VALIDATIONS.items():
            violations: list[str] = []
            validate(args, lambda message, urn=None, v=violations: v.append(message))
            assert violations == [], f"{name} on {registration.type}"


def test_bad_config_fails_before_any_resource_is_declared():
    mocks = testing.RecordingMocks()
    pulumi.runtime.set_mocks(mocks, preview=False)
    with pytest.raises(config.ConfigError, match="customerId"):
        program.build({**BASE, "customerId": "alice@example.com"})
    assert mocks.registrations == []


def test_the_real_entry_point_reads_stack_config():
    """__main__.py as `pulumi up` runs it, with config as Pulumi passes it (strings, JSON for lists)."""
    pulumi.runtime.set_all_config(
        {
            "norex:customerId": "c-0123456789abcdef",
            "norex:opsCidrs": '["203.0.113.0/24"]',
            "norex:opsSshKeyIds": "[99]",
            "norex:protection": "false",
            "hcloud:token": "not-a-real-token",
        }
    )
    try:
        run = testing.run_program(main=lambda: runpy.run_path(str(PULUMI / "__main__.py"), run_name="__main__"))
    finally:
        pulumi.runtime.set_all_config({})
    server = run.one(SERVER).inputs
    assert server["labels"] == {"norex-customer": "c-0123456789abcdef", "managed-by": "norex"}
    assert (server["sshKeys"], server["deleteProtection"]) == (["99"], False)
    assert set(run.outputs) == {"serverId", "ipv4", "ipv6"}


def test_a_mistyped_config_key_is_an_error_not_a_default():
    pulumi.runtime.set_all_config({"norex:customerId": "c-3f9a1c7e", "norex:servertype": "ccx13"})
    try:
        with pytest.raises(config.ConfigError) as caught:
            program.build(program.stack_config())
    finally:
        pulumi.runtime.set_all_config({})
    assert caught.value.problems[0].startswith("servertype: unknown config key")


def test_project_file_runs_python_without_a_virtualenv_of_its_own():
    project = yaml.safe_load((PULUMI / "Pulumi.yaml").read_text())
    assert project["runtime"] == "python"
    assert project["name"] == "norex-customer-server"
    assert (PULUMI / project.get("main", "__main__.py")).is_file()
    assert not (PULUMI / "__init__.py").exists(), "pulumi/ must stay a plain folder: it would shadow the pulumi SDK"
