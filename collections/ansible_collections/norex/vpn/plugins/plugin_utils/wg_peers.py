"""The rules a WireGuard peer set must follow: one implementation for the role's inputs and the server agent.

Standard library only, and nothing of Ansible: the filters in plugins/filter/network.py use it on the
controller, and norex.vpn.agent installs this file (with inputs.py) beside the agent on the server, where the
agent checks every peer set it is sent by the same rules. Messages never repeat a key, only where it sits.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress

from .inputs import is_str, not_a_list

WG_KEY_BYTES = 32
WG_KEY_CHARS = 44


def wg_key_valid(value) -> bool:
    """True when value is a WireGuard key as wg(8) prints it: 44 base64 characters of 32 bytes."""
    if not is_str(value) or len(value) != WG_KEY_CHARS or not value.endswith("="):
        return False
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    # wg refuses encodings whose unused trailing bits are set; so do we.
    return len(raw) == WG_KEY_BYTES and base64.b64encode(raw).decode("ascii") == value


def parse_network(value, *, bare_is_host: bool):
    """Parse a CIDR strictly; return (network, error). Host bits set is an error."""
    if not is_str(value) or not value.strip():
        return None, f"{value!r} is not a CIDR (a string such as 192.0.2.0/24 or 2001:db8::/32)"
    text = value.strip()
    if "/" not in text and not bare_is_host:
        return None, f"{text} has no prefix length (write it as {text}/32 or {text}/128)"
    # Parse with the family's own class: its errors say what is wrong ("'33' is
    # not a valid netmask") where ip_network only says "does not appear to be".
    family = ipaddress.IPv6Network if ":" in text else ipaddress.IPv4Network
    try:
        return family(text, strict=True), None
    except ValueError as exc:
        try:
            loose = family(text, strict=False)
        except ValueError:
            return None, f"{text} is not a valid IPv4 or IPv6 CIDR: {exc}"
        return None, f"{text} has host bits set (did you mean {loose}?)"


def wg_peer_errors(peers, ipv4_subnet, ipv6_subnet, server_public_key="", name: str = "wireguard_peers") -> list[str]:
    """Problems with a WireGuard peer list; see the wireguard role's README for the rules.

    Each peer is {public_key, addresses}; every address must be a host address
    (/32 or /128) inside one of the tunnel subnets, not the network, broadcast or
    server address, and no key or address may appear twice.
    """
    if peers is None:
        peers = []
    if errors := not_a_list(peers, name, "{public_key, addresses}"):
        return errors
    subnets = {}
    for subnet in (ipv4_subnet, ipv6_subnet):
        try:
            network = ipaddress.ip_network(str(subnet).strip(), strict=True)
        except ValueError:
            continue  # reported by subnet_errors
        subnets[network.version] = network
    errors = []
    keys: dict[str, int] = {}
    addresses: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = {}
    for index, peer in enumerate(peers):
        where = f"{name}[{index}]"
        if not isinstance(peer, dict):
            errors.append(f"{where} must be a mapping with public_key and addresses")
            continue
        unknown = sorted(set(peer) - {"public_key", "addresses"})
        if unknown:
            errors.append(f"{where} has unknown keys {', '.join(map(str, unknown))} (only public_key and addresses)")
        key = peer.get("public_key")
        if not wg_key_valid(key):
            length = len(key) if is_str(key) else 0
            errors.append(
                f"{where}.public_key is not a WireGuard public key (44 base64 characters of 32 bytes, "
                f"as `wg pubkey` prints; got {length} characters)"
            )
        elif key in keys:
            errors.append(f"{where}.public_key is a duplicate of {name}[{keys[key]}].public_key")
        else:
            keys[key] = index
            if server_public_key and key == server_public_key:
                errors.append(f"{where}.public_key is the server's own public key")
        wanted = peer.get("addresses")
        if is_str(wanted) or not isinstance(wanted, (list, tuple)) or not wanted:
            errors.append(f"{where}.addresses must be a non-empty list of tunnel addresses (IPv4 /32, IPv6 /128)")
            continue
        for position, value in enumerate(wanted):
            errors += _peer_address_errors(f"{where}.addresses[{position}]", value, subnets, addresses)
    return errors


def _peer_address_errors(where, value, subnets, addresses) -> list[str]:
    network, error = parse_network(value, bare_is_host=False)
    if error:
        return [f"{where}: {error}"]
    host_len = 32 if network.version == 4 else 128
    if network.prefixlen != host_len:
        return [f"{where}: {value} is not a host address (/{host_len})"]
    address = network.network_address
    subnet = subnets.get(network.version)
    if subnet is None or address not in subnet:
        return [f"{where}: {value} is outside the tunnel subnet {subnet or '(none)'}"]
    if address == subnet.network_address:
        return [f"{where}: {value} is the network address of {subnet}"]
    if network.version == 4 and address == subnet.broadcast_address:
        return [f"{where}: {value} is the broadcast address of {subnet}"]
    if address == subnet.network_address + 1:
        return [f"{where}: {value} is the server's own address"]
    if address in addresses:
        return [f"{where}: {value} is a duplicate, already given at {addresses[address]}"]
    addresses[address] = where
    return []
