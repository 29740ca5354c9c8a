"""`norex worker` and `norex reconcile`: the work side of the control plane."""

from __future__ import annotations

import json
import sys

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
    left alone until --retry-failed (or --converge-all) or a change of their desired state. Ready servers
    whose latest audit is older than NOREX_AUDIT_INTERVAL get one queued (`norex audit status`).
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
        "audits_queued": len(result.audits),
        "seconds": round(result.seconds, 3),
    }
    if as_json:
        click.echo(json.dumps(data))
    else:
        click.echo(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in data.items()))


@click.command()
@click.option("--canary", default=1, show_default=True, type=click.IntRange(0, 1000), help="Servers converged first.")
@click.option("--batch", default=10, show_default=True, type=click.IntRange(1, 10000), help="Servers per batch.")
@click.option("--max-failures", default=0, show_default=True, type=click.IntRange(0), help="Failures a batch may have.")
@click.option("--json", "as_json", is_flag=True, help="Print the roll-out as JSON at the end.")
def rollout(canary: int, batch: int, max_failures: int, as_json: bool) -> None:
    """Converge every server to this checkout's roles, playbooks and blocklist: canaries first, then batches
    through the queue (run `norex worker` meanwhile), stopping at the first batch with more than
    --max-failures failures. Rerun it to continue; servers already converged to this version are skipped."""
    from norex.blocklist import fleet
    from norex.converge.version import converge_version
    from norex.jobs import rollout as rolling
    from norex.jobs import tasks

    rt = tasks.runtime()
    fleet.ensure(rt.settings, rt.provisioner.blocklist_mirror)
    target = converge_version(rt.settings)

    def progress(state: rolling.Rollout, current: rolling.Batch, remaining: int, elapsed: float) -> None:
        handled = state.done + len(state.failed)
        rest = f", about {elapsed / handled * remaining:.0f} s left" if handled and remaining else ""
        kind = " (canary)" if current.canary else ""
        click.echo(
            f"norex: rollout: batch {current.number}{kind}: {len(current.done)} done, {len(current.failed)} failed, "
            f"{remaining} remaining, {elapsed:.0f} s elapsed{rest}",
            err=True,
        )
        for cid, why in current.failed.items():
            click.echo(f"norex: rollout: {cid} failed: {why}", err=True)

    result = rolling.run(
        rt.db,
        target,
        lambda cid: tasks.converge(cid, 0, True, False),
        canary=canary,
        batch=batch,
        max_failures=max_failures,
        progress=progress,
    )
    todo, _ = rolling.pending(rt.db, target)
    summary = {
        "target": target,
        "already": result.already,
        "done": result.done,
        "failed": result.failed,
        "remaining": len(todo),
        "stopped": result.stopped,
        "batches": [
            {
                "number": b.number,
                "canary": b.canary,
                "servers": b.servers,
                "done": b.done,
                "failed": b.failed,
                "seconds": round(b.seconds, 1),
            }
            for b in result.batches
        ],
    }
    if as_json:
        click.echo(json.dumps(summary))
    elif not result.batches:
        click.echo(f"every server is at version {target} ({result.already})")
    else:
        state = "stopped" if result.stopped else "finished"
        click.echo(
            f"rollout of {target} {state}: {result.done} done, {len(result.failed)} failed, {len(todo)} not at it yet"
        )
    if result.stopped:
        sys.exit(1)
