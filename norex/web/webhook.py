"""The Stripe webhook: verify, record the desired state, enqueue, answer. Nothing slower happens here.

Rejections (400, 413) happen before the database is touched, so a rejected request writes nothing. The
app logs no request data at all: no bodies, emails, Stripe ids or client addresses (uvicorn's access log
is off in `norex serve`); an internal failure is logged by exception type only, since database errors
could otherwise carry the values they were given.

What Stripe is answered (it retries any answer but a 2xx, for up to three days):
- 200 `applied` / `ignored` / `duplicate`: recorded, or nothing to record (an event of the other Stripe
  mode than NOREX_STRIPE_MODE is ignored and writes nothing).
- 200 `failed`: the event can never be stored as it is (a value the database refuses, a constraint, an
  event our code cannot read): retrying would fail the same way for three days. Nothing of it is written;
  its type is counted (`norex doctor`, `norex customers list --json`) and one line names the type and the
  error class on stderr. Once fixed, resend it from Stripe's dashboard (Stripe keeps events 30 days).
- 503: the database could not be reached or was busy: Stripe retries, and the event is applied then.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import stripe
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from norex.billing import store
from norex.db.database import Database
from norex.errors import UsageError
from norex.settings import Settings

MAX_BODY = 1 << 20  # Stripe's events are a few KiB; 1 MiB leaves room without inviting abuse
TOLERANCE = 300  # seconds, Stripe's default: a captured delivery cannot be replayed later than this
MAX_SIGNATURE_HEADER = 4096

log = logging.getLogger(__name__)

Enqueue = Callable[[str], None]


def never_storable(exc: BaseException) -> bool:
    """A failure that the same event would meet again on every delivery: the database refused a value or a
    constraint, a value could not even be bound, or our code could not read the event. Anything else (the
    database unreachable, locked, timing out) may pass, and Stripe's retry then succeeds."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        return True  # refused before it reached the database (e.g. a number too large to bind)
    return isinstance(exc, ValueError | TypeError | LookupError | ArithmeticError)


class Rejected(Exception):
    """A request answered with a short reason and nothing recorded."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The raw body, refusing more than `limit` bytes by the declared length and by the bytes actually sent."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isascii() or not declared.isdigit():
            raise Rejected(400, "bad Content-Length")
        if int(declared) > limit:
            raise Rejected(413, f"body over {limit} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise Rejected(413, f"body over {limit} bytes")
    except ClientDisconnect:
        raise Rejected(400, "client went away") from None
    return bytes(body)


def verify(body: bytes, header: str | None, secrets: list[str]) -> dict[str, Any]:
    """The event, if one of our secrets signed this body within the tolerance; else Rejected(400)."""
    if not header:
        raise Rejected(400, "missing Stripe-Signature header")
    if len(header) > MAX_SIGNATURE_HEADER or not header.isascii():
        raise Rejected(400, "malformed Stripe-Signature header")
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "body is not UTF-8") from None
    stale = False
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, TOLERANCE)
            break
        except stripe.SignatureVerificationError:
            # Tell a stale delivery from a forged one: the same check without the time limit.
            with suppress(stripe.SignatureVerificationError):
                stale = stale or stripe.WebhookSignature.verify_header(payload, header, secret, None)
    else:
        raise Rejected(400, f"timestamp outside the {TOLERANCE} s tolerance" if stale else "no valid signature")
    try:
        event = json.loads(payload)
    except (ValueError, RecursionError):
        raise Rejected(400, "malformed JSON") from None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not event["id"]
        or not isinstance(event.get("type"), str)
        or not isinstance(event.get("created"), int)
        or isinstance(event.get("created"), bool)
    ):
        raise Rejected(400, "not a Stripe event")
    return event


def create_app(
    settings: Settings, enqueue: Enqueue, db: Database | None = None, apply_devices: Enqueue | None = None
) -> Starlette:
    """The ASGI app. `enqueue` gets the opaque id of a customer the worker should look at, after the commit;
    `apply_devices` the id of one whose devices the dashboard changed (the worker pushes the peer set)."""
    secrets = settings.webhook_secrets
    if not secrets:
        raise UsageError("NOREX_STRIPE_WEBHOOK_SECRET is not set (the endpoint's whsec_... secret; comma-separate two)")
    own_db = db is None
    database = db if db is not None else Database(settings.database_url)
    grace = settings.past_due_grace_seconds
    livemode = settings.stripe_mode == "live"

    def record(event: dict[str, Any]) -> store.Outcome:
        with database.write() as session:
            outcome = store.apply_event(session, event, int(time.time()), grace_seconds=grace)
        if outcome.customer_id is not None:
            try:
                enqueue(outcome.customer_id)
            except Exception as exc:  # the state is committed; the reconcile sweep repairs a lost job
                log.error(
                    "norex: webhook: enqueue failed (%s); the reconcile sweep will pick the work up", type(exc).__name__
                )
        return outcome

    def record_failure(kind: Any, error: str) -> None:
        with database.write() as session:
            store.record_failed_event(session, kind, error, int(time.time()))

    async def webhook(request: Request) -> Response:
        try:
            body = await read_body(request)
            event = verify(body, request.headers.get("stripe-signature"), secrets)
        except Rejected as exc:
            return PlainTextResponse(exc.reason, status_code=exc.status)
        if event.get("livemode") is not livemode:
            mode = "live" if event.get("livemode") is True else "test"
            log.warning(
                "norex: webhook: ignored a %s-mode event: this control plane runs in %s mode (NOREX_STRIPE_MODE)",
                mode,
                settings.stripe_mode,
            )
            return JSONResponse({"received": True, "result": "ignored"})
        try:
            outcome = await run_in_threadpool(record, event)
        except Exception as exc:
            if not never_storable(exc):
                log.error("norex: webhook: event not recorded (%s); Stripe will retry", type(exc).__name__)
                return PlainTextResponse("temporarily unavailable", status_code=503)
            try:
                await run_in_threadpool(record_failure, event.get("type"), type(exc).__name__)
            except Exception as again:
                log.error("norex: webhook: event not recorded (%s); Stripe will retry", type(again).__name__)
                return PlainTextResponse("temporarily unavailable", status_code=503)
            log.error(
                "norex: webhook: a %s event can never be stored (%s): answered 200 so Stripe stops retrying; "
                "counted in norex doctor",
                store.event_type_label(event.get("type")),
                type(exc).__name__,
            )
            return JSONResponse({"received": True, "result": "failed"})
        return JSONResponse({"received": True, "result": outcome.result})

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok")

    @asynccontextmanager
    async def lifespan(_app: Starlette):  # type: ignore[no-untyped-def]
        yield
        if own_db:
            database.dispose()

    routes: list[Route | Mount] = [
        Route("/stripe/webhook", webhook, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    if dashboard_enabled(settings):
        from norex.web.dashboard import create_dashboard

        dashboard = create_dashboard(settings, database, apply_devices=apply_devices or enqueue, enqueue=enqueue)
        routes.append(Mount("/", app=dashboard))
    return Starlette(routes=routes, lifespan=lifespan)


def dashboard_enabled(settings: Settings) -> bool:
    """The customer dashboard is served when sessions can be signed and login links sent."""
    return settings.session_secret is not None and bool(settings.smtp_host)
