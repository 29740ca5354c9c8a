"""Dashboard accounts: one-time login links and the rate limits on asking for them.

A link's token is 32 random bytes; only its SHA-256 is stored, with the email it went to, until it is used
(deleted then) or expires (15 minutes; expired ones are deleted whenever a link is made or used). Nothing
records who asked: no address, no user agent, no login history. The rate limits live in this process's
memory only, keyed by an HMAC with a per-process random key (so not even memory holds an address or email
in the clear), and forget each request when it leaves the window.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import deque

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from norex.db.models import Customer, LoginLink

LINK_SECONDS = 15 * 60
MAX_EMAIL = 512
# What a mail system accepts in practice, without quoting: local@domain.tld, no spaces or markup.
EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)


class BadEmail(ValueError):
    pass


def normalise_email(text: str) -> str:
    """The address as stored and compared: trimmed, lower case; BadEmail when it is not one."""
    email = (text or "").strip().lower()
    if len(email) > MAX_EMAIL or not EMAIL.fullmatch(email):
        raise BadEmail("enter an email address such as name@example.com")
    return email


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_link(session: Session, email: str, now: int | None = None) -> str:
    """A new one-time token for this email (stored as its hash); expired links are deleted on the way."""
    now = int(time.time()) if now is None else now
    session.execute(delete(LoginLink).where(LoginLink.expires_at <= now))
    token = secrets.token_urlsafe(32)
    session.add(LoginLink(token_hash=token_hash(token), email=email, expires_at=now + LINK_SECONDS))
    return token


def use_link(session: Session, token: str, now: int | None = None) -> str | None:
    """The email of a valid link, which is used up; None for an unknown, used or expired one."""
    now = int(time.time()) if now is None else now
    if not token or len(token) > 128:
        return None
    row = session.get(LoginLink, token_hash(token), with_for_update=True)
    session.execute(delete(LoginLink).where(LoginLink.expires_at <= now))
    if row is None or row.expires_at <= now:
        return None
    email = row.email
    session.delete(row)
    return email


def customer_for(session: Session, email: str) -> Customer | None:
    """The customer with this email (Stripe's spelling may differ in case), if any."""
    return session.scalars(select(Customer).where(func.lower(Customer.email) == email).limit(1)).first()


class RateLimit:
    """At most `limit` requests per key within `window` seconds; keys are HMACed, entries forgotten after it."""

    def __init__(self, limit: int, window: int = LINK_SECONDS) -> None:
        self.limit, self.window = limit, window
        self._key = secrets.token_bytes(32)
        self._seen: dict[bytes, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, value: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        key = hmac.new(self._key, value.encode(), hashlib.sha256).digest()
        with self._lock:
            for other in list(self._seen):  # forget everything older than the window
                times = self._seen[other]
                while times and times[0] <= now - self.window:
                    times.popleft()
                if not times:
                    del self._seen[other]
            times = self._seen.setdefault(key, deque())
            if len(times) >= self.limit:
                return False
            times.append(now)
            return True

    def __len__(self) -> int:
        return len(self._seen)
