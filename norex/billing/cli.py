"""`norex customers ...`: customers as billing left them, with their server's desired and actual state."""

from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy import select

from norex.billing import store
from norex.db.database import Database, connect
from norex.db.models import Customer, Server
from norex.settings import load_settings
from norex.tables import table

FIELDS = ("id", "status", "desired", "server_state", "backend", "addresses", "audit")


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
            # The continuous audit's latest verdict (pass, or fail and the checks); None before the first.
            "audit": _audit(server),
            # Why the latest job on the server failed (no personal data); None when it worked.
            "error": server.error if server is not None else None,
        }
        if show_email:
            row["email"] = customer.email
        out.append(row)
    return out


def _audit(server: Server | None) -> str | None:
    if server is None or server.audit_verdict is None:
        return None
    return server.audit_verdict if server.audit_verdict == "pass" else f"fail: {server.audit_failed or '?'}"


@customers.command("list")
@click.option(
    "--json", "as_json", is_flag=True, help="Print {customers: [...], failed_events: {type: {count, error, ...}}}."
)
@click.option("--show-email", is_flag=True, help="Include each customer's email (personal data: only when needed).")
def list_customers(as_json: bool, show_email: bool) -> None:
    """One row per customer: opaque id, subscription status, desired and actual server, backend, addresses,
    and the reason its latest job failed (a column shown only when one did)."""
    db = connect(load_settings().database_url, upgrade=False)
    try:
        rows = customer_rows(db, show_email=show_email)
        with db.read() as session:
            failed = store.failed_events(session)
    finally:
        db.dispose()
    columns = (*FIELDS, *(("error",) if any(r["error"] for r in rows) else ()), *(("email",) if show_email else ()))
    if as_json:
        click.echo(json.dumps({"customers": rows, "failed_events": failed}, indent=2))
        return
    if rows:
        click.echo(table(rows, columns))
    else:
        click.echo("no customers", err=True)
    if failed:
        total = sum(f["count"] for f in failed.values())
        click.echo(f"norex: {total} webhook event(s) could never be stored (see `norex doctor`)", err=True)
