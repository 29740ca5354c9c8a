"""The CrossGuard policy pack: each validation on good and bad resources, and the pack as the CLI runs it."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from google.protobuf import empty_pb2, struct_pb2

PULUMI = Path(__file__).resolve().parents[2] / "pulumi"
sys.path[:0] = [str(PULUMI), str(PULUMI / "policy")]
policies = importlib.import_module("norex_policies")

SERVER, FIREWALL = policies.SERVER, policies.FIREWALL
LABELS = {"norex-customer": "c-3f9a1c7e", "managed-by": "norex"}
GOOD_SERVER = {
    "backups": False,
    "labels": LABELS,
    "firewallIds": [1001],
    "userData": "#cloud-config\nbootcmd:\n- rm -rf /var/log/journal\n",
    "name": "norex-c-3f9a1c7e",
}
GOOD_RULES = [
    {"direction": "in", "protocol": "udp", "port": "51820", "sourceIps": ["0.0.0.0/0", "::/0"]},
    {"direction": "in", "protocol": "tcp", "port": "22", "sourceIps": ["203.0.113.0/24"]},
    {"direction": "in", "protocol": "tcp", "port": "8443", "sourceIps": ["203.0.113.0/24", "2001:db8::/48"]},
    {"direction": "in", "protocol": "icmp", "sourceIps": ["0.0.0.0/0", "::/0"]},
]
GOOD_FIREWALL = {"labels": LABELS, "rules": GOOD_RULES, "name": "norex-c-3f9a1c7e"}


def violations(policy, resource_type: str, props: dict) -> list[str]:
    found: list[str] = []
    policy(SimpleNamespace(resource_type=resource_type, props=props), lambda message, urn=None: found.append(message))
    return found


def test_good_resources_pass_every_policy():
    for name, (policy, _) in policies.VALIDATIONS.items():
        assert violations(policy, SERVER, GOOD_SERVER) == [], name
        assert violations(policy, FIREWALL, GOOD_FIREWALL) == [], name


def test_no_backups():
    assert len(violations(policies.no_backups, SERVER, {**GOOD_SERVER, "backups": True})) == 1
    assert len(violations(policies.no_backups, SERVER, {k: v for k, v in GOOD_SERVER.items() if k != "backups"})) == 1
    assert violations(policies.no_backups, policies.SNAPSHOT, {"serverId": 1}) == [
        "no snapshot in a customer stack: no copy of a customer's disk may exist at the provider"
    ]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"protocol": "tcp", "port": "22", "sourceIps": ["0.0.0.0/0"]}, "SSH (port 22) is open to 0.0.0.0/0"),
        ({"protocol": "tcp", "port": "22", "sourceIps": ["203.0.113.0/24", "::/0"]}, "SSH (port 22) is open to ::/0"),
        ({"protocol": "tcp", "port": "any", "sourceIps": ["0.0.0.0/0"]}, "SSH (port 22)"),
        ({"protocol": "tcp", "port": "20-30", "sourceIps": ["0.0.0.0/1"]}, "SSH (port 22) is open to 0.0.0.0/1"),
        ({"protocol": "tcp", "port": "8443", "sourceIps": ["0.0.0.0/0"]}, "TCP port 8443 is open to 0.0.0.0/0"),
        ({"protocol": "tcp", "sourceIps": ["0.0.0.0/0"]}, "SSH (port 22)"),
    ],
)
def test_no_open_ssh(rule, expected):
    found = violations(
        policies.no_open_ssh, FIREWALL, {**GOOD_FIREWALL, "rules": [*GOOD_RULES, {"direction": "in", **rule}]}
    )
    assert len(found) == 1 and found[0].startswith("rules[4]: ") and expected in found[0], found


def test_open_udp_icmp_and_outbound_rules_are_not_ssh():
    rules = [*GOOD_RULES, {"direction": "out", "protocol": "tcp", "port": "any", "destinationIps": ["0.0.0.0/0"]}]
    assert violations(policies.no_open_ssh, FIREWALL, {**GOOD_FIREWALL, "rules": rules}) == []


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (
            {**LABELS, "email": "x"},
            ["labels must be exactly ['managed-by', 'norex-customer'] (extra: ['email'], missing: [])"],
        ),
        (
            {"managed-by": "norex"},
            ["labels must be exactly ['managed-by', 'norex-customer'] (extra: [], missing: ['norex-customer'])"],
        ),
        ({**LABELS, "managed-by": "ops"}, ["label managed-by must be 'norex'"]),
        (
            {**LABELS, "norex-customer": "cus_Q9x8ABCdef1234"},
            [
                "label norex-customer is not an opaque customer id (c- and 8-32 lowercase hex digits)",
                "labels.norex-customer contains a Stripe id: personal data must never reach the provider",
            ],
        ),
    ],
)
def test_labels_without_personal_data(labels, expected):
    assert violations(policies.labels_without_personal_data, SERVER, {**GOOD_SERVER, "labels": labels}) == expected


def test_personal_data_in_any_input_is_refused_without_being_echoed():
    rules = [{**GOOD_RULES[1], "description": "SSH for alice.customer@example.com"}]
    found = violations(policies.labels_without_personal_data, FIREWALL, {**GOOD_FIREWALL, "rules": rules})
    assert found == ["rules[0].description contains an email address: personal data must never reach the provider"]
    assert violations(policies.labels_without_personal_data, SERVER, {**GOOD_SERVER, "labels": None}) == [
        "labels must be exactly ['managed-by', 'norex-customer'] (extra: [], missing: ['managed-by', 'norex-customer'])"
    ]


def test_firewall_at_creation():
    assert violations(policies.firewall_at_creation, SERVER, {**GOOD_SERVER, "firewallIds": []}) == [
        "the server has no firewall_ids: attach its firewall at creation"
    ]
    assert len(violations(policies.firewall_at_creation, policies.FIREWALL_ATTACHMENT, {"firewallId": 1})) == 1


def test_user_data_without_secrets():
    key = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
    bad = GOOD_SERVER["userData"] + f"write_files:\n- content: 'PrivateKey = {key}'\n"
    found = violations(policies.user_data_without_secrets, SERVER, {**GOOD_SERVER, "userData": bad})
    assert found == [
        "user data contains a WireGuard private or preshared key: secrets are generated on the server by the roles",
        "user data contains a WireGuard-style key: secrets are generated on the server by the roles",
    ]
    assert key not in " ".join(found)
    per_customer = GOOD_SERVER["userData"] + "hostname: c-3f9a1c7e\n"
    assert violations(policies.user_data_without_secrets, SERVER, {**GOOD_SERVER, "userData": per_customer}) == [
        "user data contains the customer id: it must be the same document for every customer"
    ]
    assert violations(policies.user_data_without_secrets, SERVER, {**GOOD_SERVER, "userData": "#!/bin/sh\n"}) == [
        "user data must be a #cloud-config document"
    ]


def test_crossguard_resource_validation_policies():
    import pulumi_policy

    pack = policies.policies()
    assert [p.name for p in pack] == list(policies.VALIDATIONS)
    assert all(isinstance(p, pulumi_policy.ResourceValidationPolicy) for p in pack)
    assert {p.enforcement_level for p in pack} == {pulumi_policy.EnforcementLevel.MANDATORY}
    by_name = {p.name: p for p in pack}
    for props, expected in ((GOOD_SERVER, []), ({**GOOD_SERVER, "backups": True}, ["no-backups"])):
        reported: list[str] = []
        for name, policy in by_name.items():
            args = pulumi_policy.ResourceValidationArgs(
                SERVER, props, "urn:pulumi:s::p::" + SERVER + "::srv", "srv", None, None
            )
            policy.validate(args, lambda message, urn=None, n=name, r=reported: r.append(n))
        assert reported == expected


def test_pack_files():
    project = yaml.safe_load((PULUMI / "policy" / "PulumiPolicy.yaml").read_text())
    assert project["runtime"] == "python", "no virtualenv option: the CLI uses the Python it is given"
    assert "pulumi-policy" in (PULUMI / "policy" / "requirements.txt").read_text()


def test_the_pack_serves_its_policies_as_the_cli_starts_it(tmp_path):
    """Start the pack's __main__.py the way the CLI does (it prints a port), then ask it over gRPC."""
    import grpc
    from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

    proc = subprocess.Popen(
        [sys.executable, "__main__.py"],
        cwd=PULUMI / "policy",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(proc.stdout.readline().strip())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
            assert info.name == "norex-customer-server"
            assert [p.name for p in info.policies] == list(policies.VALIDATIONS)

            def analyze(props: dict) -> list[str]:
                struct = struct_pb2.Struct()
                struct.update(props)
                request = analyzer_pb2.AnalyzeRequest(
                    type=SERVER, properties=struct, urn="urn:pulumi:s::p::x::srv", name="srv"
                )
                return sorted(d.policyName for d in stub.Analyze(request, timeout=30).diagnostics)

            assert analyze(GOOD_SERVER) == []
            assert analyze({**GOOD_SERVER, "backups": True, "labels": {**LABELS, "email": "a@b.example"}}) == [
                "labels-without-personal-data",
                "labels-without-personal-data",
                "no-backups",
            ]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
