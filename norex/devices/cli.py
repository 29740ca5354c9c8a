"""`norex devices ...`: a customer's devices (WireGuard peers on their server).

A change is pushed to the server's agent at once (the device works within about a second); where the server
has no agent yet or it cannot be reached, a converge is queued instead, which applies the same set.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from norex.db.database import Database, connect
from norex.errors import UsageError
from norex.settings import load_settings


@click.group()
def devices() -> None:
    """A customer's devices (WireGuard peers on their server)."""


def _db() -> Database:
    return connect(load_settings().database_url)


def _apply(db: Database, customer_id: str) -> str:
    """Push the peer set to the agent, else queue a converge; how it went, for the operator."""
    from norex.agent import fleet
    from norex.jobs import tasks

    if fleet.push_peers(db, load_settings(), customer_id):
        return "applied by the server's agent"
    tasks.converge(customer_id, force=True)
    return "a converge is queued (the server's agent was not reachable)"


@devices.command(name="add")
@click.argument("customer_id")
@click.argument("name", required=False)
@click.option("--public-key", help="The device's own WireGuard public key (its private key stays on it).")
@click.option("--qr", is_flag=True, help="Also print the config as a QR code for a phone's WireGuard app.")
@click.option("--qr-file", type=click.Path(dir_okay=False, path_type=Path), help="Write the QR code (.svg or .png).")
@click.option("--json", "as_json", is_flag=True, help="Print {id, name, address4, address6, public_key, config}.")
def devices_add(
    customer_id: str, name: str | None, public_key: str | None, qr: bool, qr_file: Path | None, as_json: bool
) -> None:
    """Add a device (NAME: up to 64 characters; none gives a random two-word name) and print its config once.

    The private key in it is made here and never stored; with --public-key the config has a placeholder for
    the key only the device has.
    """
    import segno

    from norex.devices import store

    if qr_file is not None and qr_file.suffix.lower() not in (".svg", ".png"):
        raise UsageError(f"--qr-file {qr_file}: the name must end in .svg or .png")
    db = _db()
    new = store.add(db, customer_id, name, public_key)
    how = _apply(db, customer_id)
    code = segno.make(new.config, error="m") if (qr or qr_file) else None
    if code is not None and qr_file is not None:
        qr_file.parent.mkdir(parents=True, exist_ok=True)
        code.save(str(qr_file), scale=4)
        qr_file.chmod(0o600)
    if as_json:
        click.echo(json.dumps(new.__dict__))
        return
    click.echo(new.config, nl=False)
    if qr and code is not None:
        code.terminal(compact=True)
    click.echo(f"# device {new.id} ({new.name}): {how}", err=True)


@devices.command(name="remove")
@click.argument("customer_id")
@click.argument("device")
def devices_remove(customer_id: str, device: str) -> None:
    """Remove a device (DEVICE: its id or name); the server drops the peer and what its connections left."""
    from norex.devices import store

    db = _db()
    removed = store.remove(db, customer_id, device)
    click.echo(f"removed device {removed}: {_apply(db, customer_id)}")


@devices.command(name="rename")
@click.argument("customer_id")
@click.argument("device")
@click.argument("new_name")
def devices_rename(customer_id: str, device: str, new_name: str) -> None:
    """Give a device (its id or name) another name; nothing changes on the server, which knows no names."""
    from norex.devices import store

    renamed = store.rename(_db(), customer_id, device, new_name)
    click.echo(f"renamed device {renamed}")


@devices.command(name="list")
@click.argument("customer_id")
@click.option("--json", "as_json", is_flag=True)
def devices_list(customer_id: str, as_json: bool) -> None:
    """The customer's devices: id, name, tunnel addresses, public key, and whether each is online now.

    online, rx_bytes and tx_bytes are read live from the server's agent (yes / no, or unknown when the agent
    cannot be reached); nothing of it is stored.
    """
    from norex.agent import fleet
    from norex.devices import store

    db = _db()
    rows = store.list_devices(db, customer_id)
    live = fleet.live_status(db, load_settings(), customer_id) if rows else None
    for row in rows:
        state = (live or {}).get(row["public_key"])
        row["online"] = None if state is None else state["online"]
        row["rx_bytes"] = None if state is None else state["rx_bytes"]
        row["tx_bytes"] = None if state is None else state["tx_bytes"]
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo(f"customer {customer_id} has no devices")
        return
    click.echo(f"{'ID':<15} {'NAME':<24} {'ONLINE':<7} {'IPV4':<15} {'IPV6':<24} PUBLIC KEY")
    for row in rows:
        online = "unknown" if row["online"] is None else ("yes" if row["online"] else "no")
        name = row["name"] if len(row["name"]) <= 24 else row["name"][:23] + "…"
        click.echo(
            f"{row['id']:<15} {name:<24} {online:<7} {row['address4']:<15} {row['address6']:<24} {row['public_key']}"
        )
