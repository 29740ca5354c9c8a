"""`norex serve`: the control plane's web side (Stripe's webhook)."""

from __future__ import annotations

import time

import click

from norex.billing import store
from norex.db.database import connect
from norex.errors import UsageError
from norex.settings import load_settings
from norex.web.webhook import create_app, dashboard_enabled


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (a proxy fronts it).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
def serve(host: str, port: int) -> None:
    """Receive Stripe's webhook at POST /stripe/webhook: record what each customer should have, enqueue the work;
    and serve the customer dashboard at / when NOREX_SESSION_SECRET and NOREX_SMTP_HOST are set.

    Configured by NOREX_DATABASE_URL, NOREX_STRIPE_WEBHOOK_SECRET (several, comma-separated, while rotating)
    and NOREX_PAST_DUE_GRACE_SECONDS. Keeps no access log.
    """
    import uvicorn

    from norex.jobs.tasks import apply_devices, enqueue

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
    app = create_app(settings, enqueue, apply_devices=apply_devices)
    click.echo(f"norex: Stripe webhook on http://{host}:{port}/stripe/webhook, database {db.display_url}", err=True)
    if dashboard_enabled(settings):
        click.echo(
            f"norex: customer dashboard on http://{host}:{port}/ (customers reach {settings.dashboard_url})", err=True
        )
    else:
        click.echo("norex: customer dashboard off (set NOREX_SESSION_SECRET and NOREX_SMTP_HOST)", err=True)
    uvicorn.run(app, host=host, port=port, access_log=False, server_header=False, log_level="warning", lifespan="on")
