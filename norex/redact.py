"""Values made fit to print: what the control plane shows of a URL that may carry credentials."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def without_credentials(url: str) -> str:
    """A URL fit to print: no user or password (query parameters name places, not secrets, in our URLs)."""
    parts = urlsplit(url)
    if not parts.netloc or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
