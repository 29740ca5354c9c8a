"""Alembic environment: migrate the connection norex hands over, or else the database in NOREX_DATABASE_URL.

A new revision, compared against the models:
`.venv/bin/alembic -c norex/db/migrations/alembic.ini revision --autogenerate -m "what changes"`
"""

from __future__ import annotations

from alembic import context

from norex.db.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from norex.db.database import make_engine
        from norex.settings import load_settings

        engine = make_engine(config.get_main_option("sqlalchemy.url") or load_settings().database_url)
        with engine.begin() as conn:
            _migrate(conn)
        engine.dispose()
    else:
        _migrate(connection)


def _migrate(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("norex migrations run online only (norex db upgrade)")
run()
