"""Address and key checks for the norex.vpn roles, with Python's ipaddress only.

ansible.utils (ipaddr and friends) is not available where these roles run, so
the few network computations the roles need live here. The *_errors filters
return a list of one-line messages (empty when the input is good) so that one
assert can report every problem at once, on the controller, before anything on
a server changes. Messages never repeat a key, only where it sits in the input.
"""

from __future__ import annotations

import ipaddress
import re

from ansible.errors import AnsibleFilterError
from ansible_collections.norex.vpn.plugins.plugin_utils.inputs import is_str as _is_str
from ansible_collections.norex.vpn.plugins.plugin_utils.inputs import listed_twice, not_a_list

# The peer rules are shared with the server agent (norex.vpn.agent installs that module beside it).
from ansible_collections.norex.vpn.plugins.plugin_utils.wg_peers import parse_network as _network
from ansible_collections.norex.vpn.plugins.plugin_utils.wg_peers import wg_key_valid, wg_peer_errors

# What wg-quick accepts as an interface name (and what fits IFNAMSIZ).
IFNAME_RE = re.compile(r"^[A-Za-z0-9_=+.-]{1,15}$")

# Ranges a tunnel's IPv4 subnet may come from: RFC 1918 and the shared
# address space of RFC 6598.
PRIVATE_V4 = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")]
ULA_V6 = ipaddress.ip_network("fc00::/7")
GLOBAL_V6 = ipaddress.ip_network("2000::/3")


def ifname_valid(value) -> bool:
    """True when value is a Linux interface name that wg-quick accepts."""
    return _is_str(value) and bool(IFNAME_RE.match(value))


def cidr_list_errors(values, name: str, allow_empty: bool = False, allow_any: bool = False) -> list[str]:
    """Problems with a list of networks (firewall source lists): empty, not CIDRs, host bits, /0.

    A bare address counts as a host network (/32, /128). allow_any=False refuses
    0.0.0.0/0 and ::/0, which would open the port to the whole internet.
    """
    if values is None:
        values = []
    if errors := not_a_list(values, name, "CIDRs", show_value=True):
        return errors
    if not values and not allow_empty:
        errors.append(f"{name} is empty: list at least one CIDR (IPv4 and/or IPv6) allowed to connect")
    seen = set()
    for index, value in enumerate(values):
        network, error = _network(value, bare_is_host=True)
        if error:
            errors.append(f"{name}[{index}]: {error}")
            continue
        if network.prefixlen == 0 and not allow_any:
            errors.append(f"{name}[{index}]: {value} would allow the whole internet; list the networks instead")
        errors += listed_twice(seen, network, f"{name}[{index}]: {value}")
    return errors


def address_list_errors(values, name: str) -> list[str]:
    """Problems with a list of addresses to listen on: not a list, not an address, a prefix, loopback, twice.

    Loopback is refused because the roles that take such a list always add it themselves.
    """
    if values is None:
        values = []
    if errors := not_a_list(values, name, "IP addresses", show_value=True):
        return errors
    seen = set()
    for index, value in enumerate(values):
        text = value.strip() if _is_str(value) else value
        try:
            if not _is_str(text) or "/" in text:
                raise ValueError
            address = ipaddress.ip_address(text)
        except ValueError:
            errors.append(f"{name}[{index}]: {value!r} is not an IP address (such as 10.66.0.1 or fd9a::1, no prefix)")
            continue
        if address.is_loopback:
            errors.append(f"{name}[{index}]: {text} is loopback, which is always listened on; leave it out")
        elif address.is_unspecified:
            errors.append(f"{name}[{index}]: {text} would listen on every interface; list the addresses instead")
        errors += listed_twice(seen, address, f"{name}[{index}]: {text}")
    return errors


def cidrs_of_version(values, version: int) -> list[str]:
    """The networks of one IP version from a list of CIDRs or addresses, normalised, order kept."""
    result = []
    for value in values or []:
        network = ipaddress.ip_network(str(value).strip(), strict=False)
        if network.version == int(version) and str(network) not in result:
            result.append(str(network))
    return result


def addr_in_cidrs(address, cidrs) -> bool:
    """True when address (a string, an IPv4-mapped IPv6 address counts as IPv4) is in any of cidrs."""
    try:
        ip = ipaddress.ip_address(str(address).strip().split("%")[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    for value in cidrs or []:
        try:
            if ip in ipaddress.ip_network(str(value).strip(), strict=False):
                return True
        except ValueError:
            continue
    return False


def subnet_errors(value, name: str, version: int, reserved=None) -> list[str]:
    """Problems with a tunnel subnet: wrong family or size, not private/ULA, host bits, overlaps.

    reserved is a list of networks the subnet must not overlap (the uplink's own
    networks, an operator's list); entries that are not networks are ignored here.
    """
    version = int(version)
    network, error = _network(value, bare_is_host=False)
    if error:
        return [f"{name}: {error}"]
    errors = []
    if network.version != version:
        return [f"{name}: {value} is not an IPv{version} network"]
    if version == 4:
        if not 8 <= network.prefixlen <= 30:
            errors.append(f"{name}: {value} must be between /8 and /30 (the default is a /24)")
        if not any(network.subnet_of(p) for p in PRIVATE_V4):
            errors.append(f"{name}: {value} is not a private range (10/8, 172.16/12, 192.168/16, 100.64/10)")
    else:
        if not 48 <= network.prefixlen <= 124:
            errors.append(f"{name}: {value} must be between /48 and /124 (the default is a /64)")
        if not (network.subnet_of(ULA_V6) or network.subnet_of(GLOBAL_V6)):
            errors.append(f"{name}: {value} is neither a unique local (fc00::/7) nor a global unicast network")
    for other in reserved or []:
        try:
            taken = ipaddress.ip_network(str(other).strip(), strict=False)
        except ValueError:
            continue
        if taken.version == network.version and network.overlaps(taken):
            errors.append(f"{name}: {value} overlaps {taken}, which is already in use")
    return errors


def port_errors(value, name: str, allow_zero: bool = False) -> list[str]:
    """Problems with a port number (an int or a string of digits); 0 only when it means "closed"."""
    text = str(value).strip()
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not text.isdigit() or not low <= int(text) <= 65535:
        closed = " (0 keeps it closed)" if allow_zero else ""
        return [f"{name}: {value!r} is not a port number ({low}-65535){closed}"]
    return []


SYSCTL_KEY_RE = re.compile(r"^[a-z0-9_]{1,64}$")


def seconds_map_errors(values, name: str, low: int = 1, high: int = 86400) -> list[str]:
    """Problems with a mapping of sysctl key suffixes to seconds (e.g. conntrack timeouts)."""
    if not isinstance(values, dict):
        return [f"{name}: expected a mapping of names to seconds, got {type(values).__name__}"]
    errors = []
    for key, value in values.items():
        if not _is_str(key) or not SYSCTL_KEY_RE.match(key):
            errors.append(f"{name}: {key!r} is not a setting name (a-z, 0-9 and _)")
        elif isinstance(value, bool) or not str(value).strip().isdigit() or not low <= int(value) <= high:
            errors.append(f"{name}.{key}: {value!r} is not a number of seconds from {low} to {high}")
    return errors


def net_host(value, index: int = 1, prefix: bool = False) -> str:
    """The index-th address of a network (1 = first host); with prefix=True as an interface address."""
    network = ipaddress.ip_network(str(value).strip(), strict=True)
    index = int(index)
    if not 0 < index < network.num_addresses:
        raise AnsibleFilterError(f"net_host: {value} has no address number {index}")
    address = network.network_address + index
    return f"{address}/{network.prefixlen}" if prefix else str(address)


def wg_peers_match(allowed_ips_output, peers) -> bool:
    """True when `wg show IF allowed-ips` output lists exactly these peers with exactly these addresses.

    Lets the role notice an interface whose peers drifted from its config (a
    handler lost to an interrupted run) without restarting anything.
    """
    running = {}
    for line in str(allowed_ips_output or "").splitlines():
        fields = line.split()
        if not fields:
            continue
        nets = [] if fields[1:] == ["(none)"] else fields[1:]
        running[fields[0]] = sorted(str(ipaddress.ip_network(n, strict=False)) for n in nets)
    wanted = {}
    for peer in peers or []:
        nets = peer.get("addresses") or []
        wanted[peer.get("public_key")] = sorted(str(ipaddress.ip_network(str(n).strip(), strict=False)) for n in nets)
    return running == wanted


class FilterModule:
    """Network and WireGuard key filters for norex.vpn."""

    def filters(self):
        return {
            "wg_key_valid": wg_key_valid,
            "ifname_valid": ifname_valid,
            "cidr_list_errors": cidr_list_errors,
            "address_list_errors": address_list_errors,
            "cidrs_of_version": cidrs_of_version,
            "addr_in_cidrs": addr_in_cidrs,
            "subnet_errors": subnet_errors,
            "net_host": net_host,
            "port_errors": port_errors,
            "seconds_map_errors": seconds_map_errors,
            "wg_peer_errors": wg_peer_errors,
            "wg_peers_match": wg_peers_match,
        }
