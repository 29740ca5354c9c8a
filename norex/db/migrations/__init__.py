"""Alembic migrations, run programmatically by `norex db upgrade` and at `serve`/`worker` start."""
