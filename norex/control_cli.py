"""`norex serve`, `norex customers ...`, `norex db ...`: the control plane as operators run it."""

from __future__ import annotations

import importlib
import json
import time
from typing import Any

import click
from sqlalchemy import select

from norex.billing import store
from norex.db.database import Database, connect
from norex.db.models import Customer, Server
from norex.errors import UsageError
from norex.settings import load_settings
from norex.web.webhook import Enqueue, create_app

FIELDS = ("id", "status", "desired", "server_state", "backend", "addresses")


def default_enqueue() -> Enqueue:
    """The queue's enqueue (norex.jobs.tasks) when the queue is installed; else the webhook only records."""
    try:
        tasks = importlib.import_module("norex.jobs.tasks")
    except ModuleNotFoundError as exc:
        if exc.name not in ("norex.jobs", "norex.jobs.tasks"):
            raise
        return lambda _customer_id: None
    return tasks.enqueue


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (a proxy fronts it).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
def serve(host: str, port: int) -> None:
    """Receive Stripe's webhook at POST /stripe/webhook: record what each customer should have, enqueue the work.

    Configured by NOREX_DATABASE_URL, NOREX_STRIPE_WEBHOOK_SECRET (several, comma-separated, while rotating)
    and NOREX_PAST_DUE_GRACE_SECONDS. Keeps no access log.
    """
    import uvicorn

    settings = load_settings()
    if not settings.webhook_secrets:
        raise UsageError("NOREX_STRIPE_WEBHOOK_SECRET is not set (the endpoint's whsec_... secret)")
    db = connect(settings.database_url)
    try:
        with db.write() as session:
            store.prune(session, int(time.time()))
    finally:
        db.dispose()
    # The app opens the database itself and closes it at shutdown (uvicorn ends the process by re-raising
    # SIGTERM, so a `finally` here would not run; closing the last connection folds SQLite's WAL back).
    app = create_app(settings, default_enqueue())
    click.echo(f"norex: Stripe webhook on http://{host}:{port}/stripe/webhook, database {db.display_url}", err=True)
    uvicorn.run(app, host=host, port=port, access_log=False, server_header=False, log_level="warning", lifespan="on")


@click.group()
def customers() -> None:
    """Customers as billing left them: subscription status, desired and actual server."""


def customer_rows(db: Database, *, show_email: bool = False) -> list[dict[str, Any]]:
    with db.read() as session:
        rows = session.execute(
            select(Customer, Server)
            .outerjoin(Server, Server.customer_id == Customer.id)
            .order_by(Customer.created_at, Customer.id)
        ).all()
    out = []
    for customer, server in rows:
        row: dict[str, Any] = {
            "id": customer.id,
            "status": customer.status,
            "desired": customer.desired,
            "server_state": server.state if server is not None else "absent",
            "backend": server.backend if server is not None else None,
            "addresses": [a for a in (server.ipv4, server.ipv6) if a] if server is not None else [],
        }
        if show_email:
            row["email"] = customer.email
        out.append(row)
    return out


def table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(value) or "-"
        return "-" if value is None else str(value)

    cells = [[c.upper().replace("_", " ") for c in columns]] + [[cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells)


@customers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
@click.option("--show-email", is_flag=True, help="Include each customer's email (personal data: only when needed).")
def list_customers(as_json: bool, show_email: bool) -> None:
    """One row per customer: opaque id, subscription status, desired and actual server, backend, addresses."""
    db = connect(load_settings().database_url, upgrade=False)
    try:
        rows = customer_rows(db, show_email=show_email)
    finally:
        db.dispose()
    columns = (*FIELDS, "email") if show_email else FIELDS
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        click.echo(table(rows, columns))
    else:
        click.echo("no customers", err=True)


@click.group("db")
def db_group() -> None:
    """The control plane's database (NOREX_DATABASE_URL; SQLite in the per-user data folder by default)."""


@db_group.command()
@click.option("--json", "as_json", is_flag=True, help="Print the database and its revision as JSON.")
def upgrade(as_json: bool) -> None:
    """Create or migrate the schema to the newest revision (serve and worker also do this when they start)."""
    db = connect(load_settings().database_url)
    try:
        revision = db.revision()
    finally:
        db.dispose()
    if as_json:
        click.echo(json.dumps({"database": db.display_url, "revision": revision}))
    else:
        click.echo(f"database {db.display_url} is at revision {revision}")
