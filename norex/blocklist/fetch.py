"""Read one source: a path, a file:// URL or an http(s) URL, with a timeout and a size cap.

Every failure becomes a one-line `UsageError` naming the source (never a traceback, never a domain from it).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from norex.errors import UsageError

MAX_BYTES = 128 * 1024 * 1024  # the largest public lists are tens of MB; a runaway (or a 200 MB) response stops here
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


class NotModified(Exception):
    """The server's copy is the one we hold (HTTP 304)."""


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would follow a redirect to ftp://; a list source stays on http(s)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise UsageError(f"{display(req.full_url)}: redirected to a non-HTTP URL")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _read_http(url: str, max_bytes: int, timeout: float, validators: dict[str, str] | None = None) -> bytes:
    """The body; with validators (If-None-Match, If-Modified-Since), NotModified when the server says 304."""
    label = display(url)
    parts = urlsplit(url)
    headers = {"User-Agent": USER_AGENT, **(validators or {})}
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
            if validators is not None:
                validators.clear()
                validators.update(
                    {k: v for k, v in (("ETag", response.headers.get("ETag")),
                                       ("Last-Modified", response.headers.get("Last-Modified"))) if v}
                )  # fmt: skip
    except urllib.error.HTTPError as exc:
        if exc.code == 304 and validators:
            raise NotModified(label) from None
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


@dataclass(frozen=True)
class Fetched:
    data: bytes
    fresh: bool  # fetched now (False: the held copy, unchanged upstream or because the fetch failed)
    validators: dict[str, str]  # ETag / Last-Modified of what `data` is
    problem: str | None = None  # why the held copy is used instead of a fetch
    good_since: int | None = None  # when the held copy was fetched


class Cache:
    """The last good copy of each http(s) source in a folder of the control plane's: asked for again with its ETag
    and Last-Modified (a 304 costs nothing), and used instead when a fetch fails. Files are named by a digest of
    the URL (credentials and query included, so two feed keys never share a copy); the metadata holds no URL."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _paths(self, location: str) -> tuple[Path, Path]:
        key = hashlib.sha256(location.encode()).hexdigest()[:32]
        return self.folder / f"{key}.list", self.folder / f"{key}.json"

    def held(self, location: str) -> Fetched | None:
        data_path, meta_path = self._paths(location)
        try:
            meta = json.loads(meta_path.read_text())
            return Fetched(data_path.read_bytes(), False, dict(meta["validators"]), None, int(meta["good_since"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def fetch(self, location: str, *, max_bytes: int, timeout: float) -> Fetched:
        """A fresh copy, or the held one (not modified upstream, or the fetch failed: `problem` says why); a failed
        fetch with no held copy is the UsageError it was."""
        held = self.held(location)
        asked = {
            "If-None-Match" if k == "ETag" else "If-Modified-Since": v
            for k, v in (held.validators if held else {}).items()
        }
        answered = dict(asked)
        try:
            data = _read_http(location, max_bytes, timeout, answered)
        except NotModified:
            assert held is not None
            return held
        except UsageError as exc:
            if held is None:
                raise
            return replace(held, problem=str(exc).removeprefix(f"{display(location)}: "))
        return Fetched(data, True, answered)

    def keep(self, location: str, fetched: Fetched, now: int) -> None:
        """Record a fresh copy the build accepted as the good one, each file whole or not at all."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        data_path, meta_path = self._paths(location)
        meta = json.dumps({"validators": fetched.validators, "good_since": now}).encode()
        for path, content in ((data_path, fetched.data), (meta_path, meta)):
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
            os.replace(tmp, path)
