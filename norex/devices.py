"""A customer's devices: WireGuard peers on their server.

A device's private key is made here, shown once in its wg-quick config and never stored: the
database keeps the public key, the name and the tunnel addresses. Never a device's endpoint address.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import select

from norex.db.database import Database
from norex.db.models import Customer, Device, Server
from norex.errors import AlreadyExists, NorexError, NotFound, UsageError

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
# The tunnel subnets of norex.vpn.wireguard's defaults; the server is .1 / ::1.
IPV4_PREFIX, IPV6_PREFIX = "10.66.0.", "fd9a:3c41:7be2::"
FIRST, LAST = 2, 254
DNS = ("10.66.0.1", "fd9a:3c41:7be2::1")
WIREGUARD_PORT = 51820


@dataclass(frozen=True)
class NewDevice:
    name: str
    public_key: str
    ipv4: str
    ipv6: str
    config: str  # wg-quick config with the private key: shown once


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise UsageError(f"{name!r} is not a device name: 1-32 of a-z, 0-9 and -, starting with a letter")
    return name


def keypair() -> tuple[str, str]:
    private = X25519PrivateKey.generate()
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode(), base64.b64encode(public).decode()


def client_config(private_key: str, ipv4: str, ipv6: str, server_public_key: str, endpoint: str) -> str:
    return (
        "[Interface]\n"
        f"PrivateKey = {private_key}\n"
        f"Address = {ipv4}/32, {ipv6}/128\n"
        f"DNS = {', '.join(DNS)}\n\n"
        "[Peer]\n"
        f"PublicKey = {server_public_key}\n"
        "AllowedIPs = 0.0.0.0/0, ::/0\n"
        f"Endpoint = {endpoint}\n"
        "PersistentKeepalive = 25\n"
    )


def add(db: Database, customer_id: str, name: str) -> NewDevice:
    """Register a device; its server must be ready (the config names the server's key and address)."""
    check_name(name)
    private_key, public_key = keypair()
    with db.write() as session:
        customer = session.get(Customer, customer_id)
        if customer is None:
            raise NotFound(f"no customer {customer_id!r} (see `norex customers list`)")
        server = session.get(Server, customer_id)
        if server is None or server.state != "ready" or not server.public_key or not server.ipv4:
            raise NorexError(f"customer {customer_id}'s server is not ready yet; add the device once it is")
        devices = session.scalars(select(Device).where(Device.customer_id == customer_id)).all()
        if any(d.name == name for d in devices):
            raise AlreadyExists(f"customer {customer_id} already has a device named {name!r}")
        used = {d.index for d in devices}
        index = next((i for i in range(FIRST, LAST + 1) if i not in used), None)
        if index is None:
            raise NorexError(f"customer {customer_id} has {len(used)} devices, the most one tunnel subnet holds")
        ipv4, ipv6 = f"{IPV4_PREFIX}{index}", f"{IPV6_PREFIX}{index:x}"
        session.add(
            Device(
                customer_id=customer_id,
                name=name,
                index=index,
                public_key=public_key,
                ipv4=ipv4,
                ipv6=ipv6,
                created_at=int(time.time()),
            )
        )
        endpoint = f"{server.ipv4}:{WIREGUARD_PORT}"
        config = client_config(private_key, ipv4, ipv6, server.public_key, endpoint)
    return NewDevice(name, public_key, ipv4, ipv6, config)


def remove(db: Database, customer_id: str, name: str) -> None:
    check_name(name)
    with db.write() as session:
        row = session.scalars(select(Device).where(Device.customer_id == customer_id, Device.name == name)).first()
        if row is None:
            raise NotFound(f"customer {customer_id} has no device named {name!r}")
        session.delete(row)


def list_devices(db: Database, customer_id: str) -> list[dict[str, str]]:
    with db.read() as session:
        if session.get(Customer, customer_id) is None:
            raise NotFound(f"no customer {customer_id!r} (see `norex customers list`)")
        rows = session.scalars(select(Device).where(Device.customer_id == customer_id).order_by(Device.index)).all()
        return [{"name": d.name, "public_key": d.public_key, "ipv4": d.ipv4, "ipv6": d.ipv6} for d in rows]
