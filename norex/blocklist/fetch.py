"""Read one source: a path, a file:// URL or an http(s) URL, with a timeout and a size cap.

Every failure becomes a one-line `UsageError` naming the source (never a traceback, never a domain from it).
"""

from __future__ import annotations

import base64
import http.client
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from norex.errors import UsageError

MAX_BYTES = 256 * 1024 * 1024  # the largest public lists are tens of MB; a runaway response stops here
TIMEOUT = 60.0
USER_AGENT = "norex-blocklist/1"


def display(location: str) -> str:
    """A URL without user:password and query (where feed keys live), for messages and the manifest."""
    if "://" not in location:
        return location
    parts = urlsplit(location)
    return urlunsplit((parts.scheme, _netloc(parts.hostname, parts.port), parts.path, "", ""))


def _netloc(hostname: str | None, port: int | None) -> str:
    host = f"[{hostname}]" if hostname and ":" in hostname else hostname or ""
    return f"{host}:{port}" if port else host


def read_source(location: str, *, max_bytes: int = MAX_BYTES, timeout: float = TIMEOUT) -> bytes:
    if "://" not in location:
        return _read_file(Path(location), location, max_bytes)
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise UsageError(f"{display(location)}: file:// URLs must name a local path")
        return _read_file(Path(urllib.request.url2pathname(parts.path)), display(location), max_bytes)
    if scheme in ("http", "https"):
        return _read_http(location, max_bytes, timeout)
    raise UsageError(
        f"{display(location)}: unsupported URL scheme {scheme!r} (use a path, file://, http:// or https://)"
    )


def _read_file(path: Path, label: str, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except IsADirectoryError:
        raise UsageError(f"{label}: is a directory, not a list") from None
    except OSError as exc:
        raise UsageError(f"{label}: cannot read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise UsageError(f"{label}: larger than the {max_bytes}-byte limit")
    return data


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would follow a redirect to ftp://; a list source stays on http(s)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise UsageError(f"{display(req.full_url)}: redirected to a non-HTTP URL")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _read_http(url: str, max_bytes: int, timeout: float) -> bytes:
    label = display(url)
    parts = urlsplit(url)
    headers = {"User-Agent": USER_AGENT}
    if parts.username is not None:  # urllib would take user:password@ for part of the host name
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
        url = urlunsplit((parts.scheme, _netloc(parts.hostname, parts.port), parts.path, parts.query, ""))
    opener = urllib.request.build_opener(_HttpOnlyRedirects())
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked by the caller
    try:
        with opener.open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise UsageError(f"{label}: larger than the {max_bytes}-byte limit")
            data = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise UsageError(f"{label}: HTTP {exc.code} {exc.reason}".rstrip()) from None
    except urllib.error.URLError as exc:
        raise UsageError(f"{label}: cannot fetch ({_reason(exc.reason)})") from None
    except TimeoutError:
        raise UsageError(f"{label}: no answer within {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise UsageError(f"{label}: cannot fetch ({_reason(exc)})") from None
    if len(data) > max_bytes:
        raise UsageError(f"{label}: larger than the {max_bytes}-byte limit")
    return data


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__
