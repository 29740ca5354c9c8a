"""The tunnel plan: the one definition of a customer server's WireGuard subnets, port and DNS.

The control plane hands it to site.yml as the wireguard_* variables (norex.converge.variables), allocates
device addresses from it and writes it into device configs; the Pulumi firewall opens its port. The roles'
own defaults are for servers converged by hand and are not read by the control plane.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class TunnelPlan:
    interface: str = "wg0"
    port: int = 51820
    ipv4_subnet: str = "10.66.0.0/24"
    # A unique local /64 (RFC 4193, random global ID), well clear of the lab's fd4e:6f72:6578::/48.
    ipv6_subnet: str = "fd9a:3c41:7be2::/64"

    @property
    def _net4(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.ipv4_subnet)

    @property
    def _net6(self) -> ipaddress.IPv6Network:
        return ipaddress.IPv6Network(self.ipv6_subnet)

    @property
    def server_addresses(self) -> tuple[str, str]:
        """The server takes the first host of each subnet (10.66.0.1, ...::1)."""
        return str(self._net4.network_address + 1), str(self._net6.network_address + 1)

    @property
    def dns(self) -> tuple[str, str]:
        """Devices resolve through the server's own resolver, on its tunnel addresses."""
        return self.server_addresses

    @property
    def device_indexes(self) -> range:
        """Host numbers a device may take: every address of the IPv4 subnet but the network, the server's
        and the broadcast address (the IPv6 /64 has room for each)."""
        return range(2, self._net4.num_addresses - 1)

    def device_addresses(self, index: int) -> tuple[str, str]:
        """The device with host number index: 10.66.0.N and fd9a:3c41:7be2::N (hex)."""
        if index not in self.device_indexes:
            raise ValueError(f"device index {index} is outside the tunnel subnets")
        return str(self._net4.network_address + index), str(self._net6.network_address + index)

    def role_variables(self) -> dict[str, object]:
        """The plan as norex.vpn.wireguard's variables (the firewall and resolver roles follow them)."""
        return {
            "wireguard_interface": self.interface,
            "wireguard_port": self.port,
            "wireguard_ipv4_subnet": self.ipv4_subnet,
            "wireguard_ipv6_subnet": self.ipv6_subnet,
        }


TUNNEL = TunnelPlan()
