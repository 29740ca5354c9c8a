"""Parse a wg-quick style client config (what a customer's phone would import) for lab devices."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass, field

from norex.errors import UsageError

INTERFACE_KEYS = {"privatekey", "address", "dns", "mtu", "listenport"}
PEER_KEYS = {"publickey", "presharedkey", "allowedips", "endpoint", "persistentkeepalive"}
HOOKS = {"preup", "postup", "predown", "postdown", "saveconfig", "table", "fwmark"}


@dataclass
class Peer:
    public_key: str
    allowed_ips: list[str] = field(default_factory=list)
    endpoint: tuple[str, int] | None = None
    preshared_key: str | None = None
    persistent_keepalive: int | None = None


@dataclass
class ClientConfig:
    private_key: str
    addresses: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    mtu: int | None = None
    listen_port: int | None = None
    peers: list[Peer] = field(default_factory=list)

    def wg_setconf(self) -> str:
        """The subset `wg setconf` understands (no addresses, DNS or MTU)."""
        lines = ["[Interface]", f"PrivateKey = {self.private_key}"]
        if self.listen_port:
            lines.append(f"ListenPort = {self.listen_port}")
        for p in self.peers:
            lines += ["", "[Peer]", f"PublicKey = {p.public_key}"]
            if p.preshared_key:
                lines.append(f"PresharedKey = {p.preshared_key}")
            if p.allowed_ips:
                lines.append(f"AllowedIPs = {', '.join(p.allowed_ips)}")
            if p.endpoint:
                host, port = p.endpoint
                lines.append(f"Endpoint = {f'[{host}]' if ':' in host else host}:{port}")
            if p.persistent_keepalive:
                lines.append(f"PersistentKeepalive = {p.persistent_keepalive}")
        return "\n".join(lines) + "\n"


def parse(text: str) -> ClientConfig:
    section: str | None = None
    iface: dict[str, str] = {}
    peers: list[dict[str, str]] = []
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            section = line.strip("[]").strip().lower()
            if section not in ("interface", "peer"):
                raise UsageError(f"line {number}: unknown section [{line.strip('[]')}]")
            if section == "peer":
                peers.append({})
            continue
        if "=" not in line or section is None:
            raise UsageError(f"line {number}: expected 'Key = value' inside [Interface] or [Peer]")
        key, value = (part.strip() for part in line.split("=", 1))
        key = key.lower()
        allowed = INTERFACE_KEYS if section == "interface" else PEER_KEYS
        if key in HOOKS:
            raise UsageError(f"line {number}: {key} is not supported on lab devices (no commands from configs)")
        if key not in allowed:
            raise UsageError(f"line {number}: unknown key {key!r} in [{section.title()}]")
        target = iface if section == "interface" else peers[-1]
        target[key] = f"{target[key]}, {value}" if key in ("address", "allowedips", "dns") and key in target else value
    if "privatekey" not in iface:
        raise UsageError("the config has no [Interface] PrivateKey")
    if not peers:
        raise UsageError("the config has no [Peer]")
    return ClientConfig(
        private_key=_key(iface["privatekey"], "PrivateKey"),
        addresses=[_interface_address(a) for a in _split(iface.get("address", ""))],
        dns=[_ip(d, "DNS") for d in _split(iface.get("dns", ""))],
        mtu=_int(iface.get("mtu"), "MTU", 576, 9000),
        listen_port=_int(iface.get("listenport"), "ListenPort", 1, 65535),
        peers=[_peer(p) for p in peers],
    )


def _peer(p: dict[str, str]) -> Peer:
    if "publickey" not in p:
        raise UsageError("a [Peer] has no PublicKey")
    return Peer(
        public_key=_key(p["publickey"], "PublicKey"),
        preshared_key=_key(p["presharedkey"], "PresharedKey") if "presharedkey" in p else None,
        allowed_ips=[str(_network(a)) for a in _split(p.get("allowedips", ""))],
        endpoint=_endpoint(p["endpoint"]) if "endpoint" in p else None,
        persistent_keepalive=_int(p.get("persistentkeepalive"), "PersistentKeepalive", 0, 65535),
    )


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _key(value: str, what: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise UsageError(f"{what} is not a WireGuard key (44 characters of base64)")
    return value


def _ip(value: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise UsageError(f"{what} {value!r} is not an IP address") from None


def _interface_address(value: str) -> str:
    try:
        return str(ipaddress.ip_interface(value))
    except ValueError:
        raise UsageError(f"Address {value!r} is not an address with a prefix") from None


def _network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise UsageError(f"AllowedIPs {value!r} is not a network") from None


def _endpoint(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        raise UsageError(f"Endpoint {value!r} needs a port (host:port)")
    host = host.strip("[]")
    _ip(host, "Endpoint")  # lab devices reach lab servers by address; no DNS lookups outside the lab
    number = _int(port, "Endpoint port", 1, 65535)
    assert number is not None
    return host, number


def _int(value: str | None, what: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or not low <= int(value) <= high:
        raise UsageError(f"{what} must be a number from {low} to {high}, not {value!r}")
    return int(value)
