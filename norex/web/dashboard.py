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

from norex.collection import wg_peers
from norex.db.database import Database
from norex.db.models import Customer, Server
from norex.devices import store as devices
from norex.errors import NorexError
from norex.web import accounts, mail
from norex.web.mail import MailFailed
from norex.web.stored import stored

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")
# The QR library, from the npm registry (scripts/install.sh: npm ci in norex/web/vendor), served from our origin.
VENDOR = Path(__file__).with_name("vendor") / "node_modules" / "qrcode-generator"
DEVICE_ID = re.compile(r"d-[0-9a-f]{12}")
SESSION_SECONDS = 7 * 86400
MAX_BODY = 64 * 1024  # forms only: an email, a device name, a public key
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
# Per client address and per email, within 15 minutes.
LINKS_PER_ADDRESS, LINKS_PER_EMAIL = 10, 3


def transfer(count: int) -> str:
    """Bytes as people read them: 0 B, 1.2 kB, 3.4 MB..."""
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def security_headers(stripe_js_origin: str = "") -> dict[str, str]:
    script = f"'self' {stripe_js_origin}".strip()
    frames = stripe_js_origin or "'none'"
    policy = (
        f"default-src 'none'; script-src {script}; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' {stripe_js_origin}".strip()
        + f"; frame-src {frames}; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
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
    live_status: Callable[[str], dict[str, dict] | None] | None = None,
    send_mail: Callable[[EmailMessage], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """apply_devices(customer id) queues the push of a changed peer set (the worker's apply_devices task);
    live_status(customer id) reads the devices' live state from the server's agent (norex.agent.fleet)."""
    templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True))
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
            return page(request, "error.html", 503, title="Email not sent", message=(
                "We could not send the email just now. Try again in a few minutes."
            ))  # fmt: skip
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

    async def account(request: Request) -> Response:
        customer_id = request.session.get("customer")
        if not signed_in(request):
            return RedirectResponse("/login", status_code=303)
        view: dict[str, Any] = {"email": request.session.get("email"), "subscription": None, "server": None}
        if customer_id:
            with database.read() as session:
                customer = session.get(Customer, customer_id)
                server = session.get(Server, customer_id)
                if customer is None:
                    request.session.clear()
                    return RedirectResponse("/login", status_code=303)
                view = {
                    "email": customer.email,
                    "subscription": customer.status,
                    "server": server.state if server is not None else None,
                }
        return page(request, "account.html", **view)

    def paying(request: Request) -> str | None:
        """The signed-in customer's id, when they are one (a row of ours, made by Stripe's events)."""
        return request.session.get("customer")

    def device_rows(customer_id: str) -> list[dict[str, Any]]:
        rows = devices.list_devices(database, customer_id)
        live = live_status(customer_id) if rows else None
        for row in rows:
            state = (live or {}).get(row["public_key"])
            row["online"] = None if state is None else state["online"]
            row["transfer"] = None if state is None else transfer(state["rx_bytes"] + state["tx_bytes"])
        return rows

    async def device_list(request: Request) -> Response:
        customer_id = paying(request)
        if customer_id is None:
            return RedirectResponse("/account" if signed_in(request) else "/login", status_code=303)
        with database.read() as session:
            server = session.get(Server, customer_id)
            ready = server is not None and server.state == "ready"
        rows = await run_in_threadpool(device_rows, customer_id)
        return page(request, "devices.html", devices=rows, ready=ready, title="Your devices")

    async def device_status(request: Request) -> Response:
        """The dots' refresh: per device id, online (true, false or null: unknown) and transfer; nothing else."""
        customer_id = paying(request)
        if customer_id is None:
            return JSONResponse({"error": "not logged in"}, status_code=401)
        rows = await run_in_threadpool(device_rows, customer_id)
        return JSONResponse({"devices": {r["id"]: {"online": r["online"], "transfer": r["transfer"]} for r in rows}})

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

    return Starlette(
        routes=[
            Route("/", home, methods=["GET"]),
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
            Mount("/static/vendor", app=StaticFiles(directory=str(VENDOR), check_dir=False), name="vendor"),
            Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
        ],
        middleware=[
            Middleware(Guard, headers=security_headers()),
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
