"""The customer dashboard: server-rendered pages (Jinja2) beside the webhook in `norex serve`.

Accounts have no passwords: a customer asks for a login link by email (norex.web.accounts) and the link,
once confirmed with a button (a mail scanner that follows links must not use them up), starts a session.
Sessions are signed cookies (Starlette's SessionMiddleware: HttpOnly, SameSite=Lax, Secure unless the
dashboard is plain http on loopback) holding the customer's opaque id, or, before the first payment, the
email that logged in, and a CSRF token every form sends back. Nothing is logged, and nothing about a
request (address, user agent) is stored: the rate limits are in memory only.

The app never calls a provisioning backend or Ansible: it reads the database and records desired state.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from norex.billing import store as billing_store
from norex.collection import wg_peers
from norex.db.database import Database
from norex.db.models import Customer, Server
from norex.devices import store as devices
from norex.errors import NorexError
from norex.web import accounts, mail
from norex.web.mail import MailFailed
from norex.web.payments import RUNNING
from norex.web.stored import stored

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")
# The QR library, from the npm registry (scripts/install.sh: npm ci in norex/web/vendor), served from our origin.
VENDOR = Path(__file__).with_name("vendor") / "node_modules" / "qrcode-generator"
DEVICE_ID = re.compile(r"d-[0-9a-f]{12}")
PAID_WAIT_SECONDS = 600  # how long after paying the account page waits for the server before saying "none"
SETUP_INTENT = re.compile(r"seti_[A-Za-z0-9]{1,200}")
SESSION_SECONDS = 7 * 86400
MAX_BODY = 64 * 1024  # forms only: an email, a device name, a public key
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
# Per client address and per email, within 15 minutes.
LINKS_PER_ADDRESS, LINKS_PER_EMAIL = 10, 3


def duration(seconds: int) -> str:
    """How long, as people say it: 5 minutes, 3 hours, 2 days."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "less than a minute"


def transfer(count: int) -> str:
    """Bytes as people read them: 0 B, 1.2 kB, 3.4 MB..."""
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


NONE = "'none'"


def origin_of(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}"


def stripe_origins(settings) -> dict[str, list[str]]:
    """What the pages may load from Stripe, by CSP directive: Stripe.js and its frames and API for the card form;
    with hosted Checkout, only where our forms send the customer."""
    if not settings.payments_enabled:
        return {}
    if settings.stripe_checkout:
        return {"form-action": ["https://checkout.stripe.com", "https://billing.stripe.com"]}
    js = origin_of(settings.stripe_js_url)
    api = origin_of(settings.stripe_api_base) if settings.stripe_api_base else "https://api.stripe.com"
    frames = [js, "https://hooks.stripe.com"] if js == "https://js.stripe.com" else [js]
    return {"script-src": [js], "connect-src": list(dict.fromkeys([js, api])), "frame-src": frames}


def security_headers(extra: dict[str, list[str]] | None = None) -> dict[str, str]:
    """A strict policy: our own origin only, plus what `extra` adds per directive (Stripe's, see stripe_origins)."""
    directives = {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "frame-src": [],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
    }
    for directive, sources in (extra or {}).items():
        directives[directive] = [*directives[directive], *sources]
    policy = "; ".join(f"{name} {' '.join(sources or [NONE])}" for name, sources in directives.items())
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


class Guard:
    """ASGI middleware: the security headers on every answer, and a cap on request bodies (413 over it,
    411 for a body without a length) before anything reads them."""

    def __init__(self, app: ASGIApp, headers: dict[str, str], max_body: int = MAX_BODY) -> None:
        self.app, self.max_body = app, max_body
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        if scope["method"] in ("POST", "PUT", "PATCH"):
            length = dict(scope["headers"]).get(b"content-length")
            problem = None
            if length is None:
                problem = (411, "A form must say its length.")
            elif not length.isdigit() or int(length) > self.max_body:
                problem = (413, "That form is far larger than any of ours.")
            if problem:
                response = Response(problem[1] + "\n", status_code=problem[0], media_type="text/plain")
                await response(scope, receive, with_headers)
                return
        await self.app(scope, receive, with_headers)


def create_dashboard(
    settings,
    database: Database,
    *,
    apply_devices: Callable[[str], None] = lambda _customer_id: None,
    enqueue: Callable[[str], None] = lambda _customer_id: None,
    payments: Any = None,
    live_status: Callable[[str], dict[str, dict] | None] | None = None,
    dns_tally: Callable[[str], dict[str, int] | None] | None = None,
    send_mail: Callable[[EmailMessage], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """apply_devices(customer id) queues the push of a changed peer set (the worker's apply_devices task);
    enqueue(customer id) asks the worker to look at a customer whose subscription changed (as the webhook does);
    payments is a norex.web.payments.Payments (made from the settings when payments are enabled);
    live_status(customer id) reads the devices' live state from the server's agent (norex.agent.fleet)."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    environment.filters["duration"] = duration
    environment.filters["day"] = lambda at: datetime.fromtimestamp(int(at), UTC).strftime("%Y-%m-%d")
    templates = Jinja2Templates(env=environment)
    per_address = accounts.RateLimit(LINKS_PER_ADDRESS)
    per_email = accounts.RateLimit(LINKS_PER_EMAIL)
    base = settings.dashboard_url
    parsed = urlparse(base)
    secure = not (parsed.scheme == "http" and parsed.hostname in LOOPBACK_HOSTS)
    deliver = send_mail or (lambda message: mail.send(settings, message))
    if live_status is None:
        from norex.agent import fleet

        def live_status(customer_id: str) -> dict[str, dict] | None:
            return fleet.live_status(database, settings, customer_id)

    if dns_tally is None:
        from norex.agent import fleet

        def dns_tally(customer_id: str) -> dict[str, int] | None:
            return fleet.dns_tally(database, settings, customer_id)

    if payments is None and settings.payments_enabled:
        from norex.web.payments import Payments

        payments = Payments(settings)
    stripe_js = settings.stripe_js_url if payments is not None and not settings.stripe_checkout else None

    def now() -> int:
        return int(clock())

    def csrf_token(request: Request) -> str:
        if "csrf" not in request.session:
            request.session["csrf"] = secrets.token_urlsafe(32)
        return request.session["csrf"]

    def page(request: Request, template: str, code: int = 200, **context: Any) -> Response:
        context = {"csrf": csrf_token(request), "signed_in": signed_in(request), **context}
        return templates.TemplateResponse(request, template, context, status_code=code)

    def signed_in(request: Request) -> bool:
        return bool(request.session.get("customer") or request.session.get("email"))

    async def form(request: Request) -> dict[str, str] | Response:
        """The posted form, or the 403 page when its CSRF token is missing or wrong."""
        data = await request.form()
        sent, expected = str(data.get("csrf") or ""), request.session.get("csrf") or ""
        if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
            return page(request, "error.html", 403, title="Form expired", message=(
                "This form was not sent from a page of ours, or it expired. Go back, reload the page and try again."
            ))  # fmt: skip
        return {k: str(v) for k, v in data.items() if isinstance(v, str)}

    async def home(request: Request) -> Response:
        return RedirectResponse("/account" if signed_in(request) else "/login", status_code=303)

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return page(request, "login.html")
        data = await form(request)
        if isinstance(data, Response):
            return data
        try:
            email = accounts.normalise_email(data.get("email", ""))
        except accounts.BadEmail as exc:
            return page(request, "login.html", 400, error=str(exc), email=data.get("email", "")[:200])
        address = request.client.host if request.client else ""
        if not per_address.allow(address) or not per_email.allow(email):
            return page(request, "error.html", 429, title="Too many requests", message=(
                "Too many login links were asked for. Wait a few minutes, then try again."
            ))  # fmt: skip
        with database.write() as session:
            token = accounts.new_link(session, email, now())
        try:
            await run_in_threadpool(deliver, mail.login_message(settings, email, f"{base}/login/{token}"))
        except MailFailed:
            return unavailable(
                request, "Email not sent", "We could not send the email just now. Try again in a few minutes."
            )
        # The same answer whether or not the email belongs to an account.
        return page(request, "login_sent.html", email=email)

    async def login_link(request: Request) -> Response:
        token = request.path_params["token"]
        if request.method == "GET":
            return page(request, "login_confirm.html", token=token)
        data = await form(request)
        if isinstance(data, Response):
            return data
        with database.write() as session:
            email = accounts.use_link(session, token, now())
            customer = accounts.customer_for(session, email) if email else None
            customer_id = customer.id if customer is not None else None
        if email is None:
            return page(request, "link_invalid.html", 400)
        request.session.clear()  # a new session for a new login: nothing carried over
        request.session["csrf"] = secrets.token_urlsafe(32)
        if customer_id:
            request.session["customer"] = customer_id
        else:
            request.session["email"] = email  # signed up, not yet paying: no row until Stripe has a customer
        return RedirectResponse("/account", status_code=303)

    async def logout(request: Request) -> Response:
        data = await form(request)
        if isinstance(data, Response):
            return data
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    def recognise(request: Request) -> str | None:
        """The customer id of the session; an email-only session becomes the customer's once Stripe's events
        made the row (after the first payment)."""
        customer_id = request.session.get("customer")
        email = request.session.get("email")
        if customer_id is None and email:
            with database.read() as session:
                row = accounts.customer_for(session, email)
                customer_id = row.id if row is not None else None
            if customer_id is not None:
                request.session.pop("email")
                request.session.pop("stripe_customer", None)
                request.session["customer"] = customer_id
        return customer_id

    async def account(request: Request) -> Response:
        if not signed_in(request):
            return RedirectResponse("/login", status_code=303)
        customer_id = recognise(request)
        view: dict[str, Any] = {"email": request.session.get("email"), "subscription": None, "server": None,
                                "payments": payments is not None}  # fmt: skip
        if customer_id:
            with database.read() as session:
                customer = session.get(Customer, customer_id)
                server = session.get(Server, customer_id)
                if customer is None:
                    request.session.clear()
                    return RedirectResponse("/login", status_code=303)
                view |= {
                    "email": customer.email,
                    "subscription": customer.status,
                    "server": server.state if server is not None else None,
                }
        # Paid a moment ago: the server is on its way before Stripe's event or the worker got to it.
        paid_at = request.session.get("paid_at")
        if view["server"] is not None or (paid_at is not None and now() - paid_at > PAID_WAIT_SECONDS):
            request.session.pop("paid_at", None)
        elif paid_at is not None or view["subscription"] in ("active", "trialing"):
            view["server"] = "creating"
        return page(request, "account.html", **view)

    def paying(request: Request) -> str | None:
        """The signed-in customer's id, when they are one (a row of ours, made by Stripe's events)."""
        return recognise(request)

    def device_rows(customer_id: str) -> list[dict[str, Any]]:
        rows = devices.list_devices(database, customer_id)
        live = live_status(customer_id) if rows else None
        for row in rows:
            state = (live or {}).get(row["public_key"])
            row["online"] = None if state is None else state["online"]
            row["transfer"] = None if state is None else transfer(state["rx_bytes"] + state["tx_bytes"])
        return rows

    async def live(customer_id: str, tally: bool = True) -> tuple[list[dict[str, Any]], dict[str, int] | None]:
        """The devices with their live state and the resolver's tally: the two agent calls at once."""
        rows = run_in_threadpool(device_rows, customer_id)
        if not tally:
            return await rows, None
        return tuple(await asyncio.gather(rows, run_in_threadpool(dns_tally, customer_id)))  # type: ignore[return-value]

    async def device_list(request: Request) -> Response:
        customer_id = paying(request)
        if customer_id is None:
            return RedirectResponse("/account" if signed_in(request) else "/login", status_code=303)
        with database.read() as session:
            server = session.get(Server, customer_id)
            ready = server is not None and server.state == "ready"
        rows, tally = await live(customer_id, tally=ready)
        return page(request, "devices.html", devices=rows, ready=ready, tally=tally, title="Your devices")

    async def device_status(request: Request) -> Response:
        """The dots' refresh: per device id, online (true, false or null: unknown) and transfer; nothing else."""
        customer_id = paying(request)
        if customer_id is None:
            return JSONResponse({"error": "not logged in"}, status_code=401)
        rows, tally = await live(customer_id)
        return JSONResponse({
            "devices": {r["id"]: {"online": r["online"], "transfer": r["transfer"]} for r in rows},
            "blocked": tally["blocked"] if tally else None,
        })  # fmt: skip

    async def customer_form(request: Request) -> tuple[str, dict[str, str]] | Response:
        """A paying customer's posted form with its CSRF token checked, or the answer that refuses it."""
        customer_id = paying(request)
        if customer_id is None:
            return RedirectResponse("/login", status_code=303)
        data = await form(request)
        return data if isinstance(data, Response) else (customer_id, data)

    async def device_add(request: Request) -> Response:
        posted = await customer_form(request)
        if isinstance(posted, Response):
            return posted
        customer_id, data = posted
        wants_json = "application/json" in request.headers.get("accept", "")
        name = data.get("name", "").strip() or None
        public_key = data.get("public_key", "").strip()
        try:
            if not wg_peers.wg_key_valid(public_key):
                raise NorexError("that is not a WireGuard public key (44 base64 characters, as `wg pubkey` prints)")
            new = devices.add(database, customer_id, name, public_key)
        except NorexError as exc:
            message = str(exc).split(" (see ", 1)[0]
            if wants_json:
                return JSONResponse({"error": message}, status_code=400)
            rows = await run_in_threadpool(device_rows, customer_id)
            return page(request, "devices.html", 400, devices=rows, ready=True, error=message, name=name or "")
        apply_devices(customer_id)
        if wants_json:
            # The config names the server and the tunnel; the browser puts in the private key it made.
            return JSONResponse({"id": new.id, "name": new.name, "config": new.config,
                                 "placeholder": devices.PRIVATE_KEY_PLACEHOLDER})  # fmt: skip
        return page(request, "device_added.html", device=new, title="Device added")

    async def device_rename(request: Request) -> Response:
        posted = await customer_form(request)
        if isinstance(posted, Response):
            return posted
        customer_id, data = posted
        device_id = own_device(customer_id, request)
        if device_id is None:
            return no_device(request)
        try:
            devices.rename(database, customer_id, device_id, data.get("name", ""))
        except NorexError as exc:
            return page(request, "error.html", 400, title="Not renamed", message=str(exc).split(" (see ", 1)[0])
        return RedirectResponse("/devices", status_code=303)

    async def device_remove(request: Request) -> Response:
        customer_id = paying(request)
        if customer_id is None:
            return RedirectResponse("/login", status_code=303)
        device_id = own_device(customer_id, request)
        found = next((r for r in devices.list_devices(database, customer_id) if r["id"] == device_id), None)
        if device_id is None or found is None:
            return no_device(request)
        if request.method == "GET":
            return page(request, "device_remove.html", device=found, title="Remove a device")
        data = await form(request)
        if isinstance(data, Response):
            return data
        devices.remove(database, customer_id, device_id)
        apply_devices(customer_id)
        return RedirectResponse("/devices", status_code=303)

    def own_device(customer_id: str, request: Request) -> str | None:
        """The id in the path when it is one of this customer's devices (never looked up as a name)."""
        device_id = request.path_params["device"]
        if not DEVICE_ID.fullmatch(device_id):
            return None
        known = {r["id"] for r in devices.list_devices(database, customer_id)}
        return device_id if device_id in known else None

    def no_device(request: Request) -> Response:
        return page(request, "error.html", 404, title="No such device", message="You have no such device.")

    # -- payments ----------------------------------------------------------------------------------------------

    def billing_state(customer_id: str | None) -> dict[str, Any] | None:
        if customer_id is None:
            return None
        with database.read() as session:
            row = session.get(Customer, customer_id)
            if row is None:
                return None
            return {"stripe_customer_id": row.stripe_customer_id, "subscription_id": row.subscription_id,
                    "status": row.status, "period_end": row.period_end, "email": row.email,
                    "cancel_at_period_end": row.cancel_at_period_end}  # fmt: skip

    def unavailable(request: Request, title: str, message: str) -> Response:
        return page(request, "error.html", 503, title=title, message=message)

    def json_error(message: str, code: int = 400) -> Response:
        return JSONResponse({"error": message}, status_code=code)

    async def guarded(request: Request, call: Callable[..., Any], *args: Any) -> Any:
        """Stripe's answer, or the JSON error a customer reads (a declined card: 402; Stripe down: 503)."""
        from norex.web.payments import PaymentFailed, StripeUnavailable

        try:
            return await run_in_threadpool(call, *args)
        except PaymentFailed as exc:
            return json_error(str(exc), 402)
        except StripeUnavailable:
            return json_error("Stripe could not be reached just now. Nothing was charged; try again in a minute.", 503)

    def subscribed(state: dict[str, Any] | None) -> bool:
        return state is not None and state["status"] in ("active", "trialing", "past_due")

    async def subscribe_page(request: Request) -> Response:
        if not signed_in(request):
            return RedirectResponse("/login", status_code=303)
        if payments is None:
            return page(request, "error.html", 404, title="Not here", message="Subscriptions are not taken here.")
        state = billing_state(recognise(request))
        if subscribed(state):
            return RedirectResponse("/billing", status_code=303)
        plan = await guarded(request, payments.plan)
        if isinstance(plan, Response):
            return unavailable(
                request, "Payments unavailable", "Stripe could not be reached just now. Try again in a minute."
            )
        return page(request, "subscribe.html", plan=plan.describe(), checkout=settings.stripe_checkout,
                    stripe_js=stripe_js, key=settings.stripe_publishable_key, title="Subscribe")  # fmt: skip

    async def card_form(request: Request) -> tuple[dict[str, str], dict[str, Any] | None] | Response:
        """A posted step of the subscribe card form (its fields, and the customer's state if they have a row),
        or the JSON error that refuses it."""
        if payments is None or not signed_in(request):
            return json_error("Log in first.", 401)
        data = await form(request)
        if isinstance(data, Response):
            return json_error("This form expired. Reload the page and try again.", 403)
        return data, billing_state(recognise(request))

    async def subscribe_start(request: Request) -> Response:
        """The card form's first step: the Stripe customer (once) and a SetupIntent the browser confirms."""
        posted = await card_form(request)
        if isinstance(posted, Response):
            return posted
        state = posted[1]
        if subscribed(state):
            return json_error("You already have a subscription.", 409)
        known = state["stripe_customer_id"] if state else request.session.get("stripe_customer")
        email = state["email"] if state else request.session.get("email")
        if not email:
            return json_error("Log in again first.", 401)
        started = await guarded(request, payments.start, email, known)
        if isinstance(started, Response):
            return started
        stripe_customer_id, secret = started
        if state is None:
            request.session["stripe_customer"] = stripe_customer_id
        return JSONResponse({"client_secret": secret})

    def setup_intent_of(data: dict[str, str]) -> str | None:
        value = data.get("setup_intent", "")
        return value if SETUP_INTENT.fullmatch(value) else None

    async def subscribe_finish(request: Request) -> Response:
        posted = await card_form(request)
        if isinstance(posted, Response):
            return posted
        data, state = posted
        stripe_customer_id = state["stripe_customer_id"] if state else request.session.get("stripe_customer")
        intent = setup_intent_of(data)
        if stripe_customer_id is None or intent is None:
            return json_error("Start again: reload the page.")
        if subscribed(state):
            return JSONResponse({"next": "/account"})
        done = await guarded(request, payments.subscribe, stripe_customer_id, intent)
        if isinstance(done, Response):
            return done
        # The subscription's status comes back through the signed webhook; until then the account page says the
        # payment went through and refreshes itself.
        request.session["paid_at"] = now()
        return JSONResponse({"next": "/account"})

    async def subscribe_checkout(request: Request) -> Response:
        if not signed_in(request):
            return RedirectResponse("/login", status_code=303)
        data = await form(request)
        if isinstance(data, Response):
            return data
        if payments is None or not settings.stripe_checkout:
            return RedirectResponse("/subscribe", status_code=303)
        customer_id = recognise(request)
        state = billing_state(customer_id)
        if subscribed(state):
            return RedirectResponse("/billing", status_code=303)
        email = state["email"] if state else request.session.get("email")
        known = state["stripe_customer_id"] if state else None
        url = await guarded(request, payments.checkout_url, base, email, known, customer_id)
        if isinstance(url, Response):
            return unavailable(
                request, "Payments unavailable", "Stripe could not be reached just now. Try again in a minute."
            )
        return RedirectResponse(url, status_code=303)

    async def billing_page(request: Request) -> Response:
        customer_id = paying(request)
        state = billing_state(customer_id)
        if payments is None or state is None:
            return RedirectResponse("/account" if signed_in(request) else "/login", status_code=303)
        live = None
        if not settings.stripe_checkout:
            live = await guarded(request, payments.billing, state["stripe_customer_id"])
        plan = await guarded(request, payments.plan)
        unavailable = isinstance(live, Response) or isinstance(plan, Response)
        period_end = (
            datetime.fromtimestamp(state["period_end"], UTC).strftime("%Y-%m-%d") if state["period_end"] else None
        )
        return page(request, "billing.html", state=state, period_end=period_end, unavailable=unavailable,
                    plan=None if isinstance(plan, Response) else plan.describe(),
                    live=None if isinstance(live, Response) else live, checkout=settings.stripe_checkout,
                    stripe_js=stripe_js, key=settings.stripe_publishable_key, running=state["status"] in RUNNING,
                    title="Billing")  # fmt: skip

    async def billing_cancel(request: Request) -> Response:
        """Cancel at the period's end, or resume; Stripe's answer is applied as the worker's re-check would."""
        posted = await customer_form(request)
        if isinstance(posted, Response):
            return posted
        customer_id, _data = posted
        state = billing_state(customer_id)
        if payments is None or state is None or state["subscription_id"] is None or state["status"] not in RUNNING:
            return page(
                request, "error.html", 400, title="Nothing to change", message="You have no running subscription."
            )
        cancel = request.url.path.endswith("/cancel")
        answer = await guarded(request, payments.set_cancel_at_period_end, state["subscription_id"], cancel)
        if isinstance(answer, Response):
            return unavailable(
                request, "Not changed", "Stripe could not be reached just now; nothing changed. Try again in a minute."
            )
        with database.write() as session:
            outcome = billing_store.apply_subscription(
                session, customer_id, answer, now(), grace_seconds=settings.past_due_grace_seconds
            )
        if outcome.customer_id:
            enqueue(outcome.customer_id)
        return RedirectResponse("/billing", status_code=303)

    async def card_start(request: Request) -> Response:
        posted = await customer_form(request)
        if isinstance(posted, Response):
            return json_error("Log in again, then reload the page.", 403)
        state = billing_state(posted[0])
        if payments is None or state is None:
            return json_error("You have no account with a card to replace.", 400)
        secret = await guarded(request, payments.card_setup, state["stripe_customer_id"])
        return secret if isinstance(secret, Response) else JSONResponse({"client_secret": secret})

    async def card_finish(request: Request) -> Response:
        posted = await customer_form(request)
        if isinstance(posted, Response):
            return json_error("Log in again, then reload the page.", 403)
        state, intent = billing_state(posted[0]), setup_intent_of(posted[1])
        if payments is None or state is None or intent is None:
            return json_error("Start again: reload the page.")
        done = await guarded(request, payments.replace_card, state["stripe_customer_id"], intent)
        return done if isinstance(done, Response) else JSONResponse({"next": "/billing"})

    async def billing_portal(request: Request) -> Response:
        posted = await customer_form(request)
        if isinstance(posted, Response):
            return posted
        state = billing_state(posted[0])
        if payments is None or state is None or not settings.stripe_checkout:
            return RedirectResponse("/billing", status_code=303)
        url = await guarded(request, payments.portal_url, base, state["stripe_customer_id"])
        if isinstance(url, Response):
            return unavailable(
                request, "Stripe unavailable", "Stripe could not be reached just now. Try again in a minute."
            )
        return RedirectResponse(url, status_code=303)

    async def close_account(request: Request) -> Response:
        """A confirmation step, then: the subscription cancelled and the customer deleted at Stripe; their events
        destroy the server and erase the row here (the page says so)."""
        if not signed_in(request):
            return RedirectResponse("/login", status_code=303)
        customer_id = recognise(request)
        state = billing_state(customer_id)
        if request.method == "GET":
            return page(request, "close.html", state=state, title="Close your account")
        data = await form(request)
        if isinstance(data, Response):
            return data
        stripe_customer_id = state["stripe_customer_id"] if state else request.session.get("stripe_customer")
        if stripe_customer_id is not None and payments is not None:
            subscription, status = (state["subscription_id"], state["status"]) if state else (None, None)
            done = await guarded(request, payments.close, stripe_customer_id, subscription, status)
            if isinstance(done, Response):
                return unavailable(
                    request,
                    "Not closed yet",
                    "Stripe could not be reached just now, so nothing was deleted. Try again in a minute.",
                )
        elif state is not None:
            return unavailable(
                request, "Not closed yet", "Payments are not configured here; ask support to close the account."
            )
        request.session.clear()
        return page(request, "closed.html", had_server=bool(state and state["subscription_id"]), title="Account closed")

    async def what_we_store(request: Request) -> Response:
        audit = None
        customer_id = paying(request)
        if customer_id:
            with database.read() as session:
                server = session.get(Server, customer_id)
                if server is not None and server.audit_verdict and server.audit_at:
                    at = datetime.fromtimestamp(server.audit_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
                    audit = {"verdict": server.audit_verdict, "failed": server.audit_failed or "", "at": at}
        every = settings.audit_interval
        return page(request, "stored.html", s=stored(), audit=audit, every=every, title="What we store")

    async def blocklist_sources(request: Request) -> Response:
        """The licences of the lists every server's resolver blocks from: the manifest of the fleet's list
        (beside NOREX_BLOCKLIST_FILE, else the control plane's own build of the defaults)."""
        from norex.blocklist.fleet import manifest_path
        from norex.blocklist.sources import LICENCE_URLS, MIT_NOTICE, MODIFIED

        try:
            manifest = json.loads(manifest_path(settings).read_text())
        except (OSError, ValueError):
            manifest = None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("sources"), list):
            manifest = None
        listed = [s for s in (manifest or {}).get("sources", []) if isinstance(s, dict)]
        return page(request, "blocklist_sources.html", manifest=manifest, title="Blocklist sources and licences",
                    known=[s for s in listed if s.get("key")], own=[s for s in listed if not s.get("key")],
                    licence_urls=LICENCE_URLS, mit=MIT_NOTICE, modified=MODIFIED)  # fmt: skip

    return Starlette(
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/blocklist-sources", blocklist_sources, methods=["GET"]),
            Route("/what-we-store", what_we_store, methods=["GET"]),
            Route("/devices", device_list, methods=["GET"]),
            Route("/devices", device_add, methods=["POST"]),
            Route("/devices/status", device_status, methods=["GET"]),
            Route("/devices/{device}/rename", device_rename, methods=["POST"]),
            Route("/devices/{device}/remove", device_remove, methods=["GET", "POST"]),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/login/{token}", login_link, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/account", account, methods=["GET"]),
            Route("/subscribe", subscribe_page, methods=["GET"]),
            Route("/subscribe", subscribe_finish, methods=["POST"]),
            Route("/subscribe/start", subscribe_start, methods=["POST"]),
            Route("/subscribe/checkout", subscribe_checkout, methods=["POST"]),
            Route("/billing", billing_page, methods=["GET"]),
            Route("/billing/cancel", billing_cancel, methods=["POST"]),
            Route("/billing/resume", billing_cancel, methods=["POST"]),
            Route("/billing/card/start", card_start, methods=["POST"]),
            Route("/billing/card", card_finish, methods=["POST"]),
            Route("/billing/portal", billing_portal, methods=["POST"]),
            Route("/close", close_account, methods=["GET", "POST"]),
            Mount("/static/vendor", app=StaticFiles(directory=str(VENDOR), check_dir=False), name="vendor"),
            Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
        ],
        middleware=[
            Middleware(Guard, headers=security_headers(stripe_origins(settings))),
            Middleware(
                SessionMiddleware,
                secret_key=settings.session_secret.get_secret_value(),
                session_cookie="norex_session",
                max_age=SESSION_SECONDS,
                same_site="lax",
                https_only=secure,
            ),
        ],
    )
