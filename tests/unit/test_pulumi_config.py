"""Stack config validation (pure, no Pulumi): defaults, the opaque customer id, types, locations, CIDRs, keys."""

from __future__ import annotations

import dataclasses
import importlib
import sys
from pathlib import Path

import pytest

PULUMI = Path(__file__).resolve().parents[2] / "pulumi"
sys.path.insert(0, str(PULUMI))
config = importlib.import_module("norex_pulumi.config")

EMAIL = "alice.customer@example.com"
BASE = {"customerId": "c-3f9a1c7e", "opsCidrs": ["203.0.113.0/24"], "opsSshKeyIds": [4711]}


def problems(**changes) -> list[str]:
    raw = {**BASE, **changes}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(config.ConfigError) as caught:
        config.parse_settings(raw)
    return caught.value.problems


def test_defaults_are_documented_and_current():
    settings = config.parse_settings(BASE)
    assert settings == config.ServerSettings(
        customer_id="c-3f9a1c7e",
        server_type="cx23",
        location="fsn1",
        image="debian-12",
        ops_cidrs=("203.0.113.0/24",),
        control_plane_cidrs=(),
        ops_ssh_key_ids=(4711,),
        wireguard_port=51820,
        agent_port=8443,
        protection=True,
    )
    assert config.DEFAULTS["serverType"] not in config.RETIRED_SERVER_TYPES
    readme = (PULUMI / "README.md").read_text()
    for key in config.KEYS:
        assert f"`{key}`" in readme, f"{key} is not documented in pulumi/README.md"
    for key, value in config.DEFAULTS.items():
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        assert shown in readme, f"the default of {key} ({shown}) is not documented"


def test_settings_are_frozen_and_labels_exact():
    settings = config.parse_settings(BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.customer_id = "c-00000000"  # type: ignore[misc]
    assert settings.labels == {"norex-customer": "c-3f9a1c7e", "managed-by": "norex"}
    assert settings.server_name == "norex-c-3f9a1c7e"


def test_pulumi_config_strings_are_understood():
    """`pulumi config` hands the program strings; structured values as JSON."""
    settings = config.parse_settings(
        {
            "customerId": "c-3f9a1c7e",
            "opsCidrs": '["203.0.113.0/24", "2001:db8:aa::/48"]',
            "controlPlaneCidrs": '["198.51.100.7/32", "203.0.113.0/24"]',
            "opsSshKeyIds": '["4711", 4712]',
            "wireguardPort": "51821",
            "agentPort": "9443",
            "protection": "false",
            "serverType": "cpx21",
            "location": "ash",
        }
    )
    assert settings.ops_cidrs == ("203.0.113.0/24", "2001:db8:aa::/48")
    assert settings.management_cidrs == ("203.0.113.0/24", "2001:db8:aa::/48", "198.51.100.7/32")
    assert settings.ops_ssh_key_ids == (4711, 4712)
    assert (settings.wireguard_port, settings.agent_port, settings.protection) == (51821, 9443, False)


@pytest.mark.parametrize(
    "customer_id",
    [
        EMAIL,
        "cus_Q9x8ABCdef1234",
        "sub_1PqRsTuVwXyZ0123",
        "C-3F9A1C7E",
        "c-3f9a1c7",
        "c-" + "a" * 33,
        "c-3f9a1c7g",
        "3f9a1c7e",
    ],
)
def test_only_an_opaque_customer_id_is_accepted(customer_id):
    found = problems(customerId=customer_id)
    assert len(found) == 1 and found[0].startswith("customerId:")
    assert EMAIL not in found[0] and "cus_" not in found[0] and "sub_" not in found[0], "personal data echoed"


def test_unknown_keys_are_refused_so_personal_data_cannot_ride_along():
    found = problems(email=EMAIL, stripeCustomer="cus_Q9x8ABCdef1234", servertype="cx23")
    assert [p.split(":")[0] for p in found] == ["email", "servertype", "stripeCustomer"]
    assert all(EMAIL not in p for p in found)


def test_server_types():
    assert problems(serverType="cx99") == [
        "serverType: unknown server type 'cx99' (known: "
        + ", ".join(config.SERVER_TYPES)
        + "; add a new Hetzner type to extraServerTypes)"
    ]
    assert problems(serverType="cx22") == ["serverType: 'cx22' is retired by Hetzner; use 'cx23' instead"]
    assert problems(serverType="cx23", location="ash") == [
        "serverType: 'cx23' is not offered in 'ash' (only in fsn1, nbg1, hel1)"
    ]
    assert config.parse_settings({**BASE, "serverType": "cpx22", "extraServerTypes": ["cpx22"]}).server_type == "cpx22"
    assert problems(extraServerTypes=["CPX 22"]) == ["extraServerTypes: ['CPX 22'] are not Hetzner names"]
    for server_type, locations in config.SERVER_TYPES.items():
        assert set(locations) <= set(config.LOCATIONS), server_type
        config.parse_settings({**BASE, "serverType": server_type, "location": locations[-1]})


def test_locations():
    for location in ("fsn1", "nbg1", "hel1", "ash", "hil", "sin"):
        assert config.parse_settings({**BASE, "serverType": "cpx11", "location": location}).location == location
    assert problems(location="fra1") == [
        "location: unknown location 'fra1' (known: fsn1, nbg1, hel1, ash, hil, sin; "
        "add a new Hetzner location to extraLocations)"
    ]
    assert config.parse_settings({**BASE, "location": "fra1", "extraLocations": ["fra1"]}).location == "fra1"


@pytest.mark.parametrize(
    ("cidr", "expected"),
    [
        ("10.0.0.300/24", "is not a valid CIDR"),
        ("10.0.0.1/24", "did you mean 10.0.0.0/24?"),
        ("203.0.113.7", "is not a CIDR (write it with a prefix"),
        ("not-a-cidr/8", "is not a valid CIDR"),
        ("0.0.0.0/0", "is too wide"),
        ("::/0", "is too wide"),
        ("0.0.0.0/1", "is too wide"),
        (42, "is not a CIDR"),
    ],
)
def test_malformed_or_open_cidrs_are_refused(cidr, expected):
    for key in ("opsCidrs", "controlPlaneCidrs"):
        found = problems(**{key: ["198.51.100.0/24", cidr]})
        assert len(found) == 1 and found[0].startswith(f"{key}[1]: ") and expected in found[0], found


def test_ops_cidrs_and_ssh_keys_are_required():
    assert problems(opsCidrs=None, opsSshKeyIds=None) == [
        "opsCidrs: required, not set (`pulumi config set norex:opsCidrs ...`)",
        "opsSshKeyIds: required, not set (`pulumi config set norex:opsSshKeyIds ...`)",
    ]
    assert problems(opsSshKeyIds=[]) == [
        "opsSshKeyIds: at least one ops SSH key id is required (`hcloud ssh-key list`)"
    ]
    assert problems(opsCidrs=[]) == ["opsCidrs: at least one CIDR is required"]
    assert problems(opsSshKeyIds=["deploy-key"]) == [
        "opsSshKeyIds[0]: 'deploy-key' is not a Hetzner SSH key id (a positive integer)"
    ]
    assert len(problems(opsSshKeyIds=[0, True, -3])) == 3
    assert problems(opsSshKeyIds="not json") == [
        "opsSshKeyIds: expected a list (e.g. `pulumi config set --path 'norex:opsSshKeyIds[0]' ...`)"
    ]


def test_ports_image_and_protection():
    assert problems(agentPort=51820) == ["agentPort: 51820 is also the wireguardPort; they must differ"]
    assert problems(wireguardPort=22) == ["wireguardPort: 22 is the SSH port; choose another port"]
    assert problems(agentPort=70000) == ["agentPort: 70000 is not a port number (1-65535)"]
    assert problems(wireguardPort="fast") == ["wireguardPort: 'fast' is not a port number (1-65535)"]
    assert problems(image="ubuntu-24.04")[0].startswith("image: 'ubuntu-24.04' is not allowed")
    assert config.parse_settings({**BASE, "image": "123456789"}).image == "123456789"
    assert problems(protection="maybe") == ["protection: 'maybe' is not true or false"]


def test_every_problem_is_reported_at_once_one_line_each():
    with pytest.raises(config.ConfigError) as caught:
        config.parse_settings({"customerId": EMAIL, "serverType": "cx22", "location": "mars", "opsCidrs": ["1.2.3.4"]})
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "opsSshKeyIds",
        "customerId",
        "location",
        "serverType",
        "opsCidrs[0]",
    ]
    message = str(caught.value)
    assert message.splitlines()[0] == "invalid stack config:"
    assert len(message.splitlines()) == 6 and EMAIL not in message
