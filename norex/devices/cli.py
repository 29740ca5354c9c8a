"""`norex devices ...`: a customer's devices (WireGuard peers on their server)."""

from __future__ import annotations

import json

import click

from norex.db.database import Database, connect
from norex.settings import load_settings


@click.group()
def devices() -> None:
    """A customer's devices (WireGuard peers on their server)."""


def _db() -> Database:
    return connect(load_settings().database_url)


@devices.command(name="add")
@click.argument("customer_id")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print {name, public_key, ipv4, ipv6, config}.")
def devices_add(customer_id: str, name: str, as_json: bool) -> None:
    """Add a device; print its wg-quick config. Its private key is shown this once and never stored."""
    from norex.devices import store
    from norex.jobs import tasks

    new = store.add(_db(), customer_id, name)
    tasks.converge(customer_id, force=True)
    if as_json:
        click.echo(json.dumps(new.__dict__))
    else:
        click.echo(new.config, nl=False)


@devices.command(name="remove")
@click.argument("customer_id")
@click.argument("name")
def devices_remove(customer_id: str, name: str) -> None:
    """Remove a device; the server drops the peer at its next converge (queued now)."""
    from norex.devices import store
    from norex.jobs import tasks

    store.remove(_db(), customer_id, name)
    tasks.converge(customer_id, force=True)


@devices.command(name="list")
@click.argument("customer_id")
@click.option("--json", "as_json", is_flag=True)
def devices_list(customer_id: str, as_json: bool) -> None:
    """The customer's devices: name, tunnel addresses, public key."""
    from norex.devices import store

    rows = store.list_devices(_db(), customer_id)
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        click.echo(f"{row['name']:<32} {row['ipv4']:<15} {row['ipv6']:<22} {row['public_key']}")
