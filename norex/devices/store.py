"""A customer's devices in the control plane's database: an opaque id, a name, a public key, tunnel addresses.

Never a device's private key (made here only when the customer brings no public key, and then only shown once
in its config) and never its endpoint address. A name is a label the customer chose, or a random two-word
one; it lives only here (the server knows public keys and addresses only). A device's addresses are its own
while it exists; a freed host number is given again only after its device is gone.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from sqlalchemy import or_, select

from norex.collection import wg_peers
from norex.converge.variables import Peer
from norex.db.database import Database
from norex.db.models import Customer, Device, Server
from norex.devices.config import client_config, keypair
from norex.devices.names import check_label, random_name
from norex.errors import AlreadyExists, NorexError, NotFound, UsageError
from norex.tunnel import TUNNEL

# Where a customer's own private key goes in a config made for a public key they brought.
PRIVATE_KEY_PLACEHOLDER = "<the private key of this device, which only the device has>"


@dataclass(frozen=True)
class NewDevice:
    id: str
    name: str
    address4: str
    address6: str
    public_key: str
    config: str  # wg-quick config, with the private key when we made it: shown once


def _customer(session, customer_id: str) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"no customer {customer_id!r} (see `norex customers list`)")
    return customer


def _find(session, customer_id: str, device: str) -> Device:
    """A device of the customer by its id or its name."""
    row = session.scalars(
        select(Device).where(Device.customer_id == customer_id, or_(Device.id == device, Device.name == device))
    ).first()
    if row is None:
        raise NotFound(f"customer {customer_id} has no device {device!r} (see `norex devices list {customer_id}`)")
    return row


def add(db: Database, customer_id: str, name: str | None = None, public_key: str | None = None) -> NewDevice:
    """Register a device; its server must be ready (the config names the server's key and address)."""
    label = check_label(name) if name is not None else None
    if public_key is not None and not wg_peers.wg_key_valid(public_key.strip()):
        raise UsageError("--public-key is not a WireGuard public key (44 base64 characters, as `wg pubkey` prints)")
    if public_key is None:
        private_key, public_key = keypair()
    else:
        private_key, public_key = PRIVATE_KEY_PLACEHOLDER, public_key.strip()
    with db.write() as session:
        _customer(session, customer_id)
        server = session.get(Server, customer_id)
        if server is None or server.state != "ready" or not server.public_key or not server.ipv4:
            raise NorexError(f"customer {customer_id}'s server is not ready yet; add the device once it is")
        devices = session.scalars(select(Device).where(Device.customer_id == customer_id)).all()
        names = {d.name for d in devices}
        if label is not None and label in names:
            raise AlreadyExists(f"customer {customer_id} already has a device named {label!r}")
        if any(d.public_key == public_key for d in devices) or public_key == server.public_key:
            raise AlreadyExists(f"customer {customer_id} already has a device with that public key")
        used = {d.index for d in devices}
        index = next((i for i in TUNNEL.device_indexes if i not in used), None)
        if index is None:
            raise NorexError(
                f"customer {customer_id} has {len(used)} devices, as many as one tunnel subnet holds; remove one first"
            )
        ipv4, ipv6 = TUNNEL.device_addresses(index)
        device = Device(
            id="d-" + secrets.token_hex(6),
            customer_id=customer_id,
            name=label if label is not None else random_name(names),
            index=index,
            public_key=public_key,
            ipv4=ipv4,
            ipv6=ipv6,
            created_at=int(time.time()),
        )
        session.add(device)
        config = client_config(private_key, ipv4, ipv6, server.public_key, server.ipv4)
        return NewDevice(device.id, device.name, ipv4, ipv6, public_key, config)


def remove(db: Database, customer_id: str, device: str) -> str:
    """Remove a device (by id or name); its id."""
    with db.write() as session:
        _customer(session, customer_id)
        row = _find(session, customer_id, device)
        session.delete(row)
        return row.id


def rename(db: Database, customer_id: str, device: str, new_name: str) -> str:
    """Give a device (by id or name) another name; its id. Nothing changes on the server."""
    label = check_label(new_name)
    with db.write() as session:
        _customer(session, customer_id)
        row = _find(session, customer_id, device)
        clash = session.scalars(
            select(Device).where(Device.customer_id == customer_id, Device.name == label, Device.id != row.id)
        ).first()
        if clash is not None:
            raise AlreadyExists(f"customer {customer_id} already has a device named {label!r}")
        row.name = label
        return row.id


def list_devices(db: Database, customer_id: str) -> list[dict[str, str]]:
    with db.read() as session:
        _customer(session, customer_id)
        rows = session.scalars(select(Device).where(Device.customer_id == customer_id).order_by(Device.index)).all()
        return [
            {"id": d.id, "name": d.name, "public_key": d.public_key, "address4": d.ipv4, "address6": d.ipv6}
            for d in rows
        ]


def peers(db: Database, customer_id: str) -> list[Peer]:
    """The customer's devices as their server knows them (public keys and tunnel addresses only)."""
    with db.read() as session:
        rows = session.scalars(select(Device).where(Device.customer_id == customer_id).order_by(Device.index)).all()
        return [Peer(d.public_key, d.ipv4, d.ipv6) for d in rows]
