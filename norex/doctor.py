"""`norex doctor`: can this machine run the control plane with the configured backend, and if not, why.

Checks what `norex serve` and `norex worker` need (database, queue) and what the backend needs: the lab's
tools for `lab`; the Pulumi CLI, HCLOUD_TOKEN, the passphrase, the state backend and the hcloud settings
for `hcloud`. Secrets are reported as set or not set, never shown; URLs without credentials.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

import click

from norex.errors import MissingPrerequisite, NorexError
from norex.redact import without_credentials
from norex.settings import Settings, data_dir, load_settings


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    required: bool  # needed by the configured backend (a failed required check fails the doctor)
    detail: str


def _creatable(folder: Path) -> bool:
    """The folder exists and is writable, or its nearest existing parent is (it is made when first used)."""
    while not folder.exists():
        if folder.parent == folder:
            return False
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


# -- what every backend needs ------------------------------------------------------------------------------


def failed_events_check(failed: dict[str, dict]) -> Check:
    """Signed events the webhook could never store (answered 200 so Stripe stopped retrying): ops fix the
    cause, then resend them from Stripe's dashboard."""
    if not failed:
        return Check("webhook events", True, True, "every signed event was stored")
    total = sum(f["count"] for f in failed.values())
    kinds = ", ".join(f"{kind} x{f['count']} ({f['error']})" for kind, f in failed.items())
    return Check(
        "webhook events",
        False,
        True,
        f"{total} could never be stored: {kinds}; fix the cause, then resend them from Stripe's dashboard",
    )


def check_database(settings: Settings) -> list[Check]:
    """Reachable, and at which schema (serve and worker migrate at start, so an old schema is fine); with a
    current schema, the events the webhook could never store."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from norex.billing import store
    from norex.db.database import Database

    url = make_url(settings.database_url)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "").expanduser()
        if not path.exists():
            ok = _creatable(path.parent)
            made = "made by the first `norex serve` or `norex worker`" if ok else "its folder is not writable"
            return [Check("database", ok, True, f"{shown}: not created yet ({made})")]
    elif "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": "5"})
    db = Database(url.render_as_string(hide_password=False))
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision, head = db.revision(), db.head()
        failed = None
        if revision == head:
            with db.read() as session:
                failed = store.failed_events(session)
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        return [Check("database", False, True, f"{shown}: {reason}")]
    except OSError as exc:
        return [Check("database", False, True, f"{shown}: {exc.strerror or exc}")]
    finally:
        db.dispose()
    schema = "current" if revision == head else f"{revision or 'empty'}, migrated to {head} at the next start"
    checks = [Check("database", True, True, f"{shown}, schema {schema}")]
    return checks if failed is None else [*checks, failed_events_check(failed)]


def check_queue(settings: Settings) -> Check:
    url = settings.queue_url or ""
    if not url:
        folder = data_dir()
        ok = _creatable(folder)
        return Check("queue", ok, True, f"embedded SQLite queue in {folder}" + ("" if ok else ": not writable"))
    parts = urlsplit(url)
    shown = without_credentials(url)
    if parts.scheme in ("redis", "rediss", "unix"):
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        try:
            client.ping()
        except redis.RedisError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return Check("queue", False, True, f"{shown}: {reason}")
        finally:
            client.close()
        return Check("queue", True, True, f"{shown} answers")
    if parts.scheme == "sqlite" and parts.path:
        ok = _creatable(Path(parts.path).parent)
        return Check("queue", ok, True, shown + ("" if ok else ": its folder is not writable"))
    return Check("queue", False, True, "NOREX_QUEUE_URL: expected redis://HOST:PORT/DB or sqlite:///PATH")


def check_lab(required: bool) -> Check:
    from norex.lab.host_tools import install_command, run_checks

    checks = run_checks()
    bad = [c.name for c in checks if not c.ok]
    if not bad:
        return Check("lab", True, required, f"{len(checks)}/{len(checks)} checks ok (`norex lab doctor`)")
    fix = install_command(checks)
    return Check("lab", False, required, f"missing {', '.join(bad)}" + (f"; install with `{fix}`" if fix else ""))


# -- what the hcloud backend needs ---------------------------------------------------------------------------


def check_hcloud(settings: Settings, required: bool) -> list[Check]:
    try:
        from norex.provision import hcloud
    except ImportError as exc:
        return [Check("pulumi SDK", False, required, f"the Pulumi Python SDK cannot be imported: {exc}")]
    checks = [
        Check(
            "pulumi SDK",
            True,
            required,
            f"pulumi {metadata.version('pulumi')}, pulumi-hcloud {metadata.version('pulumi-hcloud')}",
        )
    ]
    found = hcloud.find_pulumi()
    try:
        command = hcloud.pulumi_command()  # runs `pulumi version`: the SDK's check, and MIN_CLI_VERSION
        checks.append(Check("pulumi CLI", True, required, f"v{command.version} ({found})"))
    except MissingPrerequisite as exc:
        checks.append(Check("pulumi CLI", False, required, str(exc)))
    token = bool(os.environ.get("HCLOUD_TOKEN"))
    checks.append(
        Check("HCLOUD_TOKEN", token, required, "set" if token else "not set: a Hetzner Cloud API token (read/write)")
    )
    passphrase = next((name for name in hcloud.PASSPHRASE_VARS if os.environ.get(name)), None)
    checks.append(
        Check(
            "PULUMI_CONFIG_PASSPHRASE",
            passphrase is not None,
            required,
            f"{passphrase} set" if passphrase else "not set, nor PULUMI_CONFIG_PASSPHRASE_FILE: no stack can be used",
        )
    )
    backend = settings.pulumi_backend_url
    shown = without_credentials(backend)
    if backend.startswith("file://"):
        ok = _creatable(Path(backend.removeprefix("file://")).expanduser())
        checks.append(Check("state backend", ok, required, shown + ("" if ok else ": folder not writable")))
    else:
        checks.append(Check("state backend", True, required, f"{shown} (reached by Pulumi at the first stack)"))
    try:
        valid = hcloud.server_settings(settings, hcloud.PROBE_CUSTOMER_ID)
        checks.append(
            Check(
                "hcloud settings",
                True,
                required,
                f"{valid.server_type} in {valid.location}, image {valid.image}, {len(valid.ops_cidrs)} ops and "
                f"{len(valid.control_plane_cidrs)} control-plane CIDR(s), {len(valid.ops_ssh_key_ids)} SSH key "
                f"id(s), protection {'on' if valid.protection else 'off'}",
            )
        )
    except NorexError as exc:
        checks.append(Check("hcloud settings", False, required, str(exc).removeprefix("hcloud backend settings: ")))
    key = settings.ssh_key_file
    if key is None:
        checks.append(Check("SSH key", True, required, "NOREX_SSH_KEY_FILE not set: ssh uses this user's keys"))
    else:
        checks.append(Check("SSH key", key.is_file(), required, str(key) + ("" if key.is_file() else ": no file")))
    return checks


def run_checks(settings: Settings) -> list[Check]:
    backend = settings.backend
    checks = [Check("backend", True, True, backend), *check_database(settings), check_queue(settings)]
    checks += check_hcloud(settings, required=backend == "hcloud")
    checks.append(check_lab(required=backend == "lab"))
    return checks


def problems(checks: list[Check]) -> list[str]:
    return [f"{c.name}: {c.detail}" for c in checks if c.required and not c.ok]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print {ok, backend, checks, problems}.")
def doctor(as_json: bool) -> None:
    """Check what the configured backend (NOREX_BACKEND) needs here; exit 5 with one line per problem."""
    settings = load_settings()
    checks = run_checks(settings)
    found = problems(checks)
    if as_json:
        data = {"ok": not found, "backend": settings.backend, "checks": [asdict(c) for c in checks]}
        click.echo(json.dumps({**data, "problems": found}))
    else:
        for c in checks:
            status = "ok" if c.ok else ("MISSING" if c.required else "-")
            unneeded = "" if c.ok or c.required else f" (not needed by NOREX_BACKEND={settings.backend})"
            click.echo(f"{status:<8} {c.name:<25} {c.detail}{unneeded}")
        for line in found:
            click.echo(f"norex: doctor: {line}", err=True)
    if found:
        sys.exit(MissingPrerequisite.exit_code)
