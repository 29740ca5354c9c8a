"""The lab's address plan: every lab host lives in 198.18.0.0/15 (RFC 2544) and one ULA /48.

One bridge on the host joins everything; the lab internet (router, DNS, web) and the host sit in
198.18.0.0/24, servers in 198.18.1.0/24, devices in 198.18.2.0/24. Nothing here routes beyond it.
"""

from __future__ import annotations

import ipaddress

BRIDGE = "norexlab0"
PREFIX4 = 16
PREFIX6 = 64
NET4 = ipaddress.IPv4Network("198.18.0.0/16")
ULA48 = ipaddress.IPv6Network("fd4e:6f72:6578::/48")
NET6 = ipaddress.IPv6Network("fd4e:6f72:6578::/64")

HOST4, HOST6 = "198.18.0.1", "fd4e:6f72:6578::1"  # the host: ops network, SSH source, apt cache
ROUTER4, ROUTER6 = "198.18.0.2", "fd4e:6f72:6578::2"  # the lab internet's edge: everyone's gateway
ROOT_NS4, ROOT_NS6 = "198.18.0.10", "fd4e:6f72:6578::10"  # a.root-servers.test.
TLD_NS4, TLD_NS6 = "198.18.0.11", "fd4e:6f72:6578::11"  # ns1.nic.test.
ZONE_NS4, ZONE_NS6 = "198.18.0.12", "fd4e:6f72:6578::12"  # ns1.example.test.
WEB4, WEB6 = "198.18.0.80", "fd4e:6f72:6578::80"  # www.example.test.

APT_CACHE_PORT = 3142
INET_NS = "norexlab-inet"  # the network namespace that plays the public internet

SERVER_SUBNET = 1  # 198.18.1.N
DEVICE_SUBNET = 2  # 198.18.2.N
MAX_INDEX = 254


def server_addresses(index: int) -> tuple[str, str]:
    return _indexed(SERVER_SUBNET, index)


def device_addresses(index: int) -> tuple[str, str]:
    return _indexed(DEVICE_SUBNET, index)


def _indexed(subnet: int, index: int) -> tuple[str, str]:
    if not 1 <= index <= MAX_INDEX:
        raise ValueError(f"lab index {index} out of range 1..{MAX_INDEX}")
    return f"198.18.{subnet}.{index}", f"fd4e:6f72:6578::{subnet:x}:{index:x}"
