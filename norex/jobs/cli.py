"""`norex worker` and `norex reconcile`: the work side of the control plane."""

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
    "--converge-all", is_flag=True, help="Also re-converge every server that should exist (after a new blocklist)."
)
@click.option("--retry-failed", is_flag=True, help="Retry the jobs that failed for good, once their cause is fixed.")
def reconcile(as_json: bool, converge_all: bool, retry_failed: bool) -> None:
    """Compare every customer's desired and actual server now, and queue work for those that drifted.

    Servers whose last job failed for a reason a retry cannot fix (shown by `norex customers list`) are
    left alone until --retry-failed (or --converge-all) or a change of their desired state.
    """
    from norex.jobs import tasks

    result = tasks.run_sweep(converge_all=converge_all, retry_failed=retry_failed)
    data = {
        "customers": result.customers,
        "drifted": len(result.drifted),
        "failed": len(result.failed),
        "orphans": len(result.orphans),
        "grace_expired": len(result.expired),
        "pruned": result.pruned,
        "seconds": round(result.seconds, 3),
    }
    if as_json:
        click.echo(json.dumps(data))
    else:
        click.echo(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in data.items()))
