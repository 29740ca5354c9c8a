"""`norex worker`, `norex reconcile`, `norex devices ...`: the work side of the control plane."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 32), help="Jobs run at once.")
def worker(workers: int) -> None:
    """Run queued jobs: create, converge and destroy customers' servers; sweep for drift every minute.

    The queue is NOREX_QUEUE_URL (empty: the embedded SQLite queue in the data folder; redis://... to
    share it between several worker machines). Jobs for one customer never run at the same time.
    """
    from norex.jobs import tasks

    rt = tasks.runtime()  # settings, database and backend checked before the first job
    embedded = not rt.settings.queue_url or rt.settings.queue_url.startswith("sqlite")
    # With one embedded queue, a customer lock still held at start belongs to a worker that died: drop them
    # all (huey's key/value store holds nothing else: results are off). Shared queues keep theirs (another
    # machine may hold them); they expire after tasks.LOCK_TTL_SECONDS.
    if embedded:
        tasks.H.storage.flush_results()
    consumer = tasks.H.create_consumer(workers=workers, worker_type="thread", periodic=True)
    tasks.sweep_now()
    click.echo(f"norex: worker with {workers} thread(s), backend {rt.provisioner.name}", err=True)
    consumer.run()


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--converge-all", is_flag=True, help="Also re-converge every server that is fine (after a new blocklist)."
)
def reconcile(as_json: bool, converge_all: bool) -> None:
    """Compare every customer's desired and actual server now, and queue work for those that drifted."""
    from norex.jobs import tasks

    result = tasks.run_sweep(converge_all=converge_all)
    data = {
        "customers": result.customers,
        "drifted": len(result.drifted),
        "orphans": len(result.orphans),
        "grace_expired": len(result.expired),
        "pruned": result.pruned,
        "seconds": round(result.seconds, 3),
    }
    if as_json:
        click.echo(json.dumps(data))
    else:
        click.echo(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in data.items()))


@click.group()
def devices() -> None:
    """A customer's devices (WireGuard peers on their server)."""


def _db():
    from norex.db.database import connect
    from norex.settings import load_settings

    return connect(load_settings().database_url)


@devices.command(name="add")
@click.argument("customer_id")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print {name, public_key, ipv4, ipv6, config}.")
def devices_add(customer_id: str, name: str, as_json: bool) -> None:
    """Add a device; print its wg-quick config. Its private key is shown this once and never stored."""
    from norex import devices as dev
    from norex.jobs import tasks

    db = _db()
    new = dev.add(db, customer_id, name)
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
    from norex import devices as dev
    from norex.jobs import tasks

    dev.remove(_db(), customer_id, name)
    tasks.converge(customer_id, force=True)


@devices.command(name="list")
@click.argument("customer_id")
@click.option("--json", "as_json", is_flag=True)
def devices_list(customer_id: str, as_json: bool) -> None:
    """The customer's devices: name, tunnel addresses, public key."""
    from norex import devices as dev

    rows = dev.list_devices(_db(), customer_id)
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        click.echo(f"{row['name']:<32} {row['ipv4']:<15} {row['ipv6']:<22} {row['public_key']}")


@click.command()
@click.option("--timeout", default=600, show_default=True, type=click.IntRange(60, 3600), help="Seconds per step.")
def demo(timeout: int) -> None:
    """The whole story on this machine: subscribe, get a server, connect a device, cancel, erase."""
    from norex.demo import demo as run_demo

    run_demo(timeout=timeout)
