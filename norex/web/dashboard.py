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

import secrets
import time
from collections.abc import Callable
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
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from norex.db.database import Database
from norex.db.models import Customer, Server
from norex.web import accounts, mail
from norex.web.mail import MailFailed

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")
SESSION_SECONDS = 7 * 86400
MAX_BODY = 64 * 1024  # forms only: an email, a device name, a public key
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
# Per client address and per email, within 15 minutes.
LINKS_PER_ADDRESS, LINKS_PER_EMAIL = 10, 3


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
    send_mail: Callable[[EmailMessage], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True))
    per_address = accounts.RateLimit(LINKS_PER_ADDRESS)
    per_email = accounts.RateLimit(LINKS_PER_EMAIL)
    base = settings.dashboard_url
    parsed = urlparse(base)
    secure = not (parsed.scheme == "http" and parsed.hostname in LOOPBACK_HOSTS)
    deliver = send_mail or (lambda message: mail.send(settings, message))

    def now() -> int:
        return int(clock())

    def csrf_token(request: Request) -> str:
        if "csrf" not in request.session:
            request.session["csrf"] = secrets.token_urlsafe(32)
        return request.session["csrf"]

    def page(request: Request, name: str, code: int = 200, **context: Any) -> Response:
        return templates.TemplateResponse(
            request, name, {"csrf": csrf_token(request), "signed_in": signed_in(request), **context}, status_code=code
        )

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

    return Starlette(
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/login/{token}", login_link, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/account", account, methods=["GET"]),
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
