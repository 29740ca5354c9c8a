"""The Ansible contract: what the control plane hands to site.yml, built in one place from a server's
handle, the settings and the devices; every name is an option a role documents."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from norex.converge.variables import Peer, site_variables
from norex.provision.interface import ResolverRoot, ServerHandle
from norex.settings import load_settings
from norex.tunnel import TUNNEL, TunnelPlan

ROLES = Path(__file__).resolve().parents[2] / "collections" / "ansible_collections" / "norex" / "vpn" / "roles"
KEY = "A" * 43 + "="


def documented_options() -> set[str]:
    options: set[str] = set()
    for spec in ROLES.glob("*/meta/argument_specs.yml"):
        for entry in (yaml.safe_load(spec.read_text())["argument_specs"] or {}).values():
            options |= set((entry or {}).get("options") or {})
    return options


@pytest.fixture(autouse=True)
def agent_ca(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The converge makes the agent CA on first use: here in the test's own folder, never the user's."""
    folder = tmp_path / "agent-ca"
    monkeypatch.setenv("NOREX_AGENT_CA_DIR", str(folder))
    return folder


def handle(**kw) -> ServerHandle:
    return ServerHandle("c-00000000deadbeef", "lab", "c-00000000deadbeef", "198.18.1.7", "fd4e:6f72:6578::1:7", **kw)


def test_site_variables_from_a_lab_handle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, agent_ca: Path) -> None:
    blocklist = tmp_path / "blocklist.conf"
    blocklist.write_text("")
    monkeypatch.setenv("NOREX_BLOCKLIST_FILE", str(blocklist))
    server = handle(
        ops_cidrs=("198.18.0.1/32", "fd4e:6f72:6578::1/128"),
        resolver_root=ResolverRoot(". 3600000 IN NS a.root-servers.test.\n", ("test. IN DS 1 13 2 ab",)),
    )
    variables = site_variables(server, load_settings(), [Peer(KEY, "10.66.0.2", "fd9a:3c41:7be2::2")])
    assert variables == {
        "norex_ops_cidrs": ["198.18.0.1/32", "fd4e:6f72:6578::1/128"],
        "resolver_root_hints": ". 3600000 IN NS a.root-servers.test.\n",
        "resolver_trust_anchors": ["test. IN DS 1 13 2 ab"],
        "wireguard_interface": "wg0",
        "wireguard_port": 51820,
        "wireguard_ipv4_subnet": "10.66.0.0/24",
        "wireguard_ipv6_subnet": "fd9a:3c41:7be2::/64",
        "wireguard_peers": [{"public_key": KEY, "addresses": ["10.66.0.2/32", "fd9a:3c41:7be2::2/128"]}],
        "resolver_blocklist_file": str(blocklist),
        "agent_ca_dir": str(agent_ca),
        "agent_port": 8443,
        "firewall_agent_port": 8443,
    }
    assert (agent_ca / "ca.key").stat().st_mode & 0o777 == 0o600


def test_a_cloud_handle_gives_the_control_plane_cidrs_and_the_real_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NOREX_BLOCKLIST_FILE", raising=False)
    monkeypatch.setenv("NOREX_BLOCKLIST_DIR", str(tmp_path / "fleet"))
    variables = site_variables(
        handle(ops_cidrs=("203.0.113.0/24",), control_plane_cidrs=("198.51.100.7/32",)), load_settings(), []
    )
    assert variables["norex_control_plane_cidrs"] == ["198.51.100.7/32"]
    assert "resolver_root_hints" not in variables
    # Without NOREX_BLOCKLIST_FILE: the control plane's own build of the defaults (norex.blocklist.fleet).
    assert variables["resolver_blocklist_file"] == str(tmp_path / "fleet" / "blocklist.conf")
    assert variables["wireguard_peers"] == []


def test_every_variable_handed_over_is_a_documented_role_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocklist = tmp_path / "b.conf"
    blocklist.write_text("")
    monkeypatch.setenv("NOREX_BLOCKLIST_FILE", str(blocklist))
    server = handle(
        ops_cidrs=("203.0.113.0/24",), control_plane_cidrs=("198.51.100.7/32",), resolver_root=ResolverRoot("x", ("y",))
    )
    names = set(site_variables(server, load_settings(), []))
    # norex_* are the collection's shared inputs, read through the roles' defaults.
    shared = {n for n in names if n.startswith("norex_")}
    assert names - shared <= documented_options(), names - shared - documented_options()
    defaults = "\n".join(p.read_text() for p in ROLES.glob("*/defaults/main.yml"))
    assert all(name in defaults for name in shared)


def test_the_tunnel_plan() -> None:
    assert TUNNEL.server_addresses == TUNNEL.dns == ("10.66.0.1", "fd9a:3c41:7be2::1")
    assert TUNNEL.device_addresses(2) == ("10.66.0.2", "fd9a:3c41:7be2::2")
    assert TUNNEL.device_addresses(10) == ("10.66.0.10", "fd9a:3c41:7be2::a")
    assert TUNNEL.device_addresses(254) == ("10.66.0.254", "fd9a:3c41:7be2::fe")
    assert (TUNNEL.device_indexes.start, TUNNEL.device_indexes.stop) == (2, 255)
    for outside in (0, 1, 255):
        with pytest.raises(ValueError):
            TUNNEL.device_addresses(outside)
    small = TunnelPlan(ipv4_subnet="10.9.0.0/29", ipv6_subnet="fd00:1::/64", port=51000)
    assert list(small.device_indexes) == [2, 3, 4, 5, 6]
    assert small.role_variables()["wireguard_port"] == 51000
