"""Configuration of the control plane, from the environment (NOREX_*), checked once at start.

A bad value ends as one line naming the variable, never a traceback, and never echoes the value
(it may be a secret).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
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


def default_pulumi_backend_url() -> str:
    """The hcloud backend's Pulumi state: a folder under the data dir (use s3://... for a fleet of workers)."""
    return f"file://{data_dir() / 'pulumi' / 'state'}"


def _list_from_env(value: Any) -> Any:
    """Lists from the environment: a JSON list, or comma-separated values (`203.0.113.0/24,2001:db8::/48`)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                raise ValueError("not a JSON list; write values comma-separated or as a JSON list") from None
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


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
    # The Stripe mode this control plane runs in: events of the other mode are answered 200 and ignored (a
    # live event signed with the test endpoint's secret, or the reverse, must never change a customer).
    stripe_mode: Literal["test", "live"] = "test"
    backend: Literal["lab", "hcloud"] = "lab"
    # The lab backend's image for new servers: stock (a provider's Debian 12, as hcloud's debian-12) or prepared
    # (norex/lab/prepared.py: the lab's counterpart of a prepared snapshot, NOREX_HCLOUD_IMAGE=<id>).
    lab_image: Literal["stock", "prepared"] = "stock"
    past_due_grace_seconds: int = Field(default=WEEK, ge=0)
    queue_url: str | None = None
    # -- the hcloud backend (NOREX_BACKEND=hcloud, norex/provision/hcloud.py) ------------------------------
    # Pulumi state: file:///PATH (default: a folder under the data dir) or s3://BUCKET[/PREFIX][?region=...]
    # shared by a fleet of workers. Credentials come from the environment (AWS_*), never from this URL.
    pulumi_backend_url: str = Field(default_factory=default_pulumi_backend_url)
    # One disposable Pulumi work folder per stack (Pulumi.yaml + Pulumi.<stack>.yaml), made again when lost.
    pulumi_work_dir: Path = Field(default_factory=lambda: data_dir() / "pulumi" / "workspaces")
    # Overrides of the program's defaults (pulumi/README.md, "Stack config"); unset: cx23, fsn1, debian-12.
    hcloud_server_type: str | None = None
    hcloud_location: str | None = None
    hcloud_image: str | None = None  # debian-12, or the numeric id of a prepared snapshot
    # Hetzner delete + rebuild protection on every server (destroy lifts it first, then deletes).
    hcloud_protection: bool = True
    # Hetzner SSH key ids (`hcloud ssh-key list`) put on every server; one of them is NOREX_SSH_KEY_FILE's.
    hcloud_ops_ssh_key_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    # Where SSH (and the agent) may come from: ops networks, and the control plane's own addresses.
    ops_cidrs: Annotated[list[str], NoDecode] = Field(default_factory=list)
    control_plane_cidrs: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The private key Ansible uses to reach hcloud servers as root (unset: ssh's defaults for this user).
    ssh_key_file: Path | None = None
    # The blocklist every server's resolver applies: `norex blocklist build ... --zone-type always_refuse
    # --out DIR` writes DIR/blocklist.conf. Compiled once here and pushed by each converge (no server fetches
    # anything); after rebuilding it, `norex reconcile --converge-all` pushes it to every server.
    blocklist_file: Path | None = None
    # Unset, the control plane keeps its own build of the default sources (norex/blocklist/fleet.py) here:
    # blocklist.conf, manifest.json and cache/ (each source's last good copy). The first converge builds it;
    # `norex blocklist update` refreshes it (then `norex rollout` pushes it).
    blocklist_dir: Path = Field(default_factory=lambda: data_dir() / "blocklist")
    # That build fetches each default source from BASE_URL/KEY instead of its home (unset, the lab backend uses
    # the lab web site's copies, the lab having no internet).
    blocklist_mirror: str | None = None
    # Default sources that build leaves out (`urlhaus` turns the malware list off).
    blocklist_without: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Run converges with Mitogen's strategy (pip install 'norex[fast]'): the same tasks in one Python process per
    # server instead of one per module. Optional; every test also passes without it.
    ansible_mitogen: bool = False
    # The agent CA (norex/agent/ca.py): ca.key, ca.crt and the control plane's client key and certificate, keys
    # 0600 in a 0700 folder outside the repository; made on first use.
    agent_ca_dir: Path = Field(default_factory=lambda: data_dir() / "agent-ca")
    # TCP port of every server's agent (the Pulumi firewall's agentPort; the firewall role opens it to
    # control_plane_cidrs only).
    agent_port: int = Field(default=8443, ge=1, le=65535)
    # The continuous audit: the worker audits every ready server this often (seconds; 0 turns the schedule off)
    # with the drift check, and after every converge without it (a converge just made the server what site.yml
    # makes it).
    audit_interval: int = Field(default=3600, ge=0, le=7 * 86400)

    # -- the customer dashboard (norex serve, norex/web/dashboard.py) -------------------------------------------
    # The address customers reach it at: login links in emails point here; cookies are Secure unless it is
    # http:// on loopback.
    dashboard_url: str = "http://127.0.0.1:8000"
    # Signs the session cookies; the dashboard is off without it (generate: python3 -c 'import secrets;
    # print(secrets.token_urlsafe(32))'). Changing it logs everyone out.
    session_secret: SecretStr | None = None
    # Where login links are sent through (the dashboard is off without a host).
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "NorexVPN <login@localhost>"
    # -- payments in the dashboard (norex/web/payments.py): on when NOREX_STRIPE_API_KEY, the publishable key and
    # the price are set. The card goes from the customer's browser straight to Stripe (Stripe.js); we only see ids.
    stripe_publishable_key: str | None = None
    # The recurring price (or legacy plan) id every subscription is for.
    stripe_price: str | None = None
    # Where Stripe.js comes from; the Stripe stand-in serves its own at <stand-in>/js.stripe.com/v3/.
    stripe_js_url: str = "https://js.stripe.com/v3/"
    # Hosted Stripe Checkout to subscribe and the Customer Portal for billing, instead of the card form on our pages.
    stripe_checkout: bool = False

    @field_validator("dashboard_url")
    @classmethod
    def _dashboard_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or "?" in value or "#" in value:
            raise ValueError("must be an http:// or https:// URL without a query (https://vpn.example.com)")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator("stripe_js_url")
    @classmethod
    def _js_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://127.0.0.1:", "http://localhost:")) or "?" in value:
            raise ValueError("must be an https:// URL (or http:// on loopback, for the Stripe stand-in)")
        return value

    @field_validator("stripe_publishable_key")
    @classmethod
    def _publishable(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"pk_(test|live)_[A-Za-z0-9]{1,250}", value):
            raise ValueError("must be a publishable key (pk_test_... or pk_live_...)")
        return value

    @field_validator("stripe_api_base")
    @classmethod
    def _api_base(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _key_matches_mode(self) -> Settings:
        key = self.stripe_api_key.get_secret_value() if self.stripe_api_key is not None else ""
        prefix = key.split("_", 2)[:2]
        known = len(prefix) == 2 and prefix[0] in ("sk", "rk") and prefix[1] in ("test", "live")
        if known and prefix[1] != self.stripe_mode:
            raise ValueError(
                f"NOREX_STRIPE_API_KEY is a {prefix[1]}-mode key but NOREX_STRIPE_MODE is {self.stripe_mode}"
            )
        public = (self.stripe_publishable_key or "").split("_")
        if len(public) > 2 and public[1] != self.stripe_mode:
            raise ValueError(
                f"NOREX_STRIPE_PUBLISHABLE_KEY is a {public[1]}-mode key but NOREX_STRIPE_MODE is {self.stripe_mode}"
            )
        return self

    @property
    def fleet_blocklist_file(self) -> Path:
        """The include file every converge pushes: NOREX_BLOCKLIST_FILE, else the control plane's own build of
        the default sources in NOREX_BLOCKLIST_DIR (norex/blocklist/fleet.py makes it)."""
        return self.blocklist_file if self.blocklist_file is not None else self.blocklist_dir / "blocklist.conf"

    @property
    def payments_enabled(self) -> bool:
        """The dashboard takes subscriptions: it can call Stripe, and knows the price (and, for the card form on
        our pages, the publishable key)."""
        ready = self.stripe_api_key is not None and self.stripe_price is not None
        return ready and (self.stripe_checkout or self.stripe_publishable_key is not None)

    @field_validator("blocklist_file")
    @classmethod
    def _blocklist_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(
                "not a file (make one with: norex blocklist build ... --zone-type always_refuse --out DIR)"
            )
        return value

    @field_validator("blocklist_mirror")
    @classmethod
    def _blocklist_mirror(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith(("http://", "https://")) or "?" in value or "#" in value):
            raise ValueError("must be an http:// or https:// URL without a query (the default sources are BASE/KEY)")
        return value.rstrip("/") if value else value

    @field_validator("blocklist_without", mode="before")
    @classmethod
    def _blocklist_without_list(cls, value: Any) -> Any:
        return _list_from_env(value)

    @field_validator("blocklist_without")
    @classmethod
    def _blocklist_without(cls, value: list[str]) -> list[str]:
        from norex.blocklist.sources import DEFAULTS

        keys = {s.key for s in DEFAULTS}
        if {v.lower() for v in value} - keys:
            raise ValueError(f"names a source that is not a default (defaults: {', '.join(sorted(keys))})")
        return sorted({v.lower() for v in value})

    @field_validator("pulumi_backend_url")
    @classmethod
    def _pulumi_backend_url(cls, value: str) -> str:
        if value.startswith("file://"):
            path = value.removeprefix("file://")
            if not (path.startswith("/") or path == "~" or path.startswith("~/")):
                raise ValueError("a file:// state folder needs an absolute path (file:///var/lib/norex/pulumi)")
            return value.rstrip("/") if len(path) > 1 else value
        if value.startswith("s3://") and len(value) > len("s3://"):
            return value
        raise ValueError("expected file:///PATH or s3://BUCKET (a self-managed Pulumi state backend)")

    @field_validator("hcloud_ops_ssh_key_ids", "ops_cidrs", "control_plane_cidrs", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _list_from_env(value)

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
        message = str(error["msg"]).removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        # A check across settings names its variables itself.
        where = f"NOREX_{str(error['loc'][0]).upper()}: " if error["loc"] else ""
        raise UsageError(f"{where}{message}{more}") from None
