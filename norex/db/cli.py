"""`norex db ...`: the control plane's database."""

from __future__ import annotations

import json

import click

from norex.db.database import connect
from norex.settings import load_settings


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
