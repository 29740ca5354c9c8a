"""CustomerServer: one customer's dedicated Hetzner Cloud server and the firewall it is born behind."""

from __future__ import annotations

import pulumi
import pulumi_hcloud as hcloud

from . import cloud_init
from .config import ServerSettings

WORLD = ("0.0.0.0/0", "::/0")
SSH_PORT = 22
# Inputs that only matter when the server is created. Changing one later (a new cloud-config, a new
# image, rotated ops keys) would make the provider replace every customer's server; new servers get the
# new values, and an existing server is rebuilt only on purpose (`pulumi up --replace URN`).
CREATION_ONLY = ["userData", "image", "sshKeys"]


def firewall_rules(settings: ServerSettings) -> list[dict[str, object]]:
    """Inbound rules; anything not listed is dropped. Outbound is open (it is a VPN's exit)."""
    management = list(settings.management_cidrs)
    return [
        {
            "description": "WireGuard",
            "direction": "in",
            "protocol": "udp",
            "port": str(settings.wireguard_port),
            "source_ips": list(WORLD),
        },
        {
            "description": "SSH from ops and the control plane",
            "direction": "in",
            "protocol": "tcp",
            "port": str(SSH_PORT),
            "source_ips": management,
        },
        {
            "description": "norex agent from ops and the control plane",
            "direction": "in",
            "protocol": "tcp",
            "port": str(settings.agent_port),
            "source_ips": management,
        },
        {"description": "ICMP", "direction": "in", "protocol": "icmp", "source_ips": list(WORLD)},
    ]


class CustomerServer(pulumi.ComponentResource):
    """A Debian 12 server for one customer, known to Hetzner only by an opaque customer id."""

    server_id: pulumi.Output[str]
    ipv4: pulumi.Output[str]
    ipv6: pulumi.Output[str]

    def __init__(self, name: str, settings: ServerSettings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("norex:hcloud:CustomerServer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.firewall = hcloud.Firewall(
            f"{name}-firewall",
            name=settings.server_name,
            labels=settings.labels,
            rules=[hcloud.FirewallRuleArgs(**rule) for rule in firewall_rules(settings)],
            opts=child,
        )
        self.server = hcloud.Server(
            f"{name}-server",
            name=settings.server_name,
            server_type=settings.server_type,
            location=settings.location,
            image=settings.image,
            allow_deprecated_images=False,
            # No copy of a customer's disk may exist at the provider.
            backups=False,
            delete_protection=settings.protection,
            rebuild_protection=settings.protection,
            labels=settings.labels,
            ssh_keys=[str(key_id) for key_id in settings.ops_ssh_key_ids],
            public_nets=[hcloud.ServerPublicNetArgs(ipv4_enabled=True, ipv6_enabled=True)],
            # Attached at creation: the server is never up without its firewall (a later
            # FirewallAttachment would leave the first boot open).
            firewall_ids=[self.firewall.id.apply(int)],
            user_data=cloud_init.render(),
            opts=pulumi.ResourceOptions(
                parent=self,
                ignore_changes=CREATION_ONLY,
                # Server names are unique per Hetzner project: a deliberate replacement removes the old one first.
                delete_before_replace=True,
            ),
        )
        self.server_id = self.server.id
        self.ipv4 = self.server.ipv4_address
        self.ipv6 = self.server.ipv6_address
        self.register_outputs({"server_id": self.server_id, "ipv4": self.ipv4, "ipv6": self.ipv6})
