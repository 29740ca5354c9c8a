"""The Ansible contract: every variable the control plane hands to playbooks/site.yml, built in one place.

Pure: from a server's handle (its network facts), the settings and the customer's devices. The roles'
argument specs (collections/.../roles/*/meta/argument_specs.yml) describe each variable; nothing else in
the control plane names a role variable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from norex.provision.interface import ResolverRoot, ServerHandle
from norex.settings import Settings
from norex.tunnel import TUNNEL, TunnelPlan


@dataclass(frozen=True)
class Peer:
    """A device as its server knows it: a public key and tunnel addresses, nothing else (no name)."""

    public_key: str
    ipv4: str
    ipv6: str


def network_variables(
    ops_cidrs: Sequence[str],
    control_plane_cidrs: Sequence[str] = (),
    resolver_root: ResolverRoot | None = None,
) -> dict[str, Any]:
    """Where SSH and the agent may be reached from, and the DNS root the resolver recurses from."""
    variables: dict[str, Any] = {"norex_ops_cidrs": list(ops_cidrs)}
    if control_plane_cidrs:
        variables["norex_control_plane_cidrs"] = list(control_plane_cidrs)
    if resolver_root is not None:
        variables["resolver_root_hints"] = resolver_root.hints
        variables["resolver_trust_anchors"] = list(resolver_root.trust_anchors)
    return variables


def peer_variables(peers: Iterable[Peer]) -> list[dict[str, Any]]:
    """norex.vpn.wireguard's wireguard_peers."""
    return [{"public_key": p.public_key, "addresses": [f"{p.ipv4}/32", f"{p.ipv6}/128"]} for p in peers]


def agent_variables(settings: Settings) -> dict[str, Any]:
    """norex.vpn.agent's: the CA it signs the agent's certificate with (made on first use), and its port, which
    norex.vpn.firewall opens to the control plane's networks only."""
    from norex.agent.ca import AgentCA

    AgentCA(settings.agent_ca_dir).ensure()
    return {
        "agent_ca_dir": str(settings.agent_ca_dir),
        "agent_port": settings.agent_port,
        "firewall_agent_port": settings.agent_port,
    }


def site_variables(
    server: ServerHandle, settings: Settings, peers: Iterable[Peer], tunnel: TunnelPlan = TUNNEL
) -> dict[str, Any]:
    """The extra variables of one converge of site.yml (connection settings go into the inventory)."""
    variables = {
        **network_variables(server.ops_cidrs, server.control_plane_cidrs, server.resolver_root),
        **tunnel.role_variables(),
        "wireguard_peers": peer_variables(peers),
        **agent_variables(settings),
    }
    # Compiled once for the fleet on the control plane and pushed: no server fetches lists itself.
    variables["resolver_blocklist_file"] = str(settings.fleet_blocklist_file)
    return variables
