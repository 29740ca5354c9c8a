"""Configuration of the control plane, from the environment (NOREX_*), checked once at start.

A bad value ends as one line naming the variable, never a traceback, and never echoes the value
(it may be a secret).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from norex.errors import UsageError

WEEK = 7 * 24 * 3600


def data_dir() -> Path:
    """The documented per-user data path: $XDG_DATA_HOME/norex, else ~/.local/share/norex."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "norex"


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / 'norex.db'}"


def normalise_database_url(url: str) -> str:
    """Accept the URLs operators paste (postgres://, postgresql://) and route PostgreSQL through psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError("not a database URL (expected sqlite:///PATH or postgresql://...)") from None
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        if parsed.drivername not in ("postgresql+psycopg",):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed.render_as_string(hide_password=False)
    if backend == "sqlite":
        if parsed.drivername != "sqlite":
            raise ValueError("for SQLite use sqlite:///PATH")
        if not parsed.database or parsed.database == ":memory:":
            raise ValueError("SQLite needs a file path (sqlite:///PATH); an in-memory database would lose everything")
        return url
    raise ValueError("only sqlite:///PATH and postgresql://... are supported")


class Settings(BaseSettings):
    """Everything `norex serve` and `norex worker` read from the environment."""

    model_config = SettingsConfigDict(env_prefix="NOREX_", env_ignore_empty=True, extra="ignore", frozen=True)

    database_url: str = Field(default_factory=default_database_url)
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_key: SecretStr | None = None
    stripe_api_base: str | None = None
    backend: Literal["lab", "hcloud"] = "lab"
    past_due_grace_seconds: int = Field(default=WEEK, ge=0)
    queue_url: str | None = None

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator("stripe_api_base")
    @classmethod
    def _api_base(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @property
    def webhook_secrets(self) -> list[str]:
        """Several secrets, comma-separated, let us rotate the endpoint secret on our side without downtime."""
        if self.stripe_webhook_secret is None:
            return []
        return [s.strip() for s in self.stripe_webhook_secret.get_secret_value().split(",") if s.strip()]


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (overrides win); a bad value raises a one-line UsageError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors(include_input=False, include_url=False)[0]
        field = str(error["loc"][0]) if error["loc"] else "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise UsageError(f"NOREX_{field.upper()}: {message}{more}") from None
