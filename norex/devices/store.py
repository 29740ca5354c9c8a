"""A customer's devices in the control plane's database: name, public key, tunnel addresses.

Never a device's private key (made here, shown once in its config) and never its endpoint address.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from sqlalchemy import select

from norex.converge.variables import Peer
from norex.db.database import Database
from norex.db.models import Customer, Device, Server
from norex.devices.config import client_config, keypair
from norex.errors import AlreadyExists, NorexError, NotFound, UsageError
from norex.tunnel import TUNNEL

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


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
        index = next((i for i in TUNNEL.device_indexes if i not in used), None)
        if index is None:
            raise NorexError(f"customer {customer_id} has {len(used)} devices, the most one tunnel subnet holds")
        ipv4, ipv6 = TUNNEL.device_addresses(index)
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
        config = client_config(private_key, ipv4, ipv6, server.public_key, server.ipv4)
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


def peers(db: Database, customer_id: str) -> list[Peer]:
    """The customer's devices as their server knows them (public keys and tunnel addresses only)."""
    with db.read() as session:
        rows = session.scalars(select(Device).where(Device.customer_id == customer_id).order_by(Device.index)).all()
        return [Peer(d.public_key, d.ipv4, d.ipv6) for d in rows]
