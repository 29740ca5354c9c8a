"""Fetching through the cache: conditional requests (ETag, Last-Modified), and a source that fails (HTTP 500), comes
back truncated, or sends a 200 MB body keeps its last good copy in force, with a one-line warning naming it and
since when. Served from 127.0.0.1 by a server whose answer each test sets."""

from __future__ import annotations

import contextlib
import http.server
from collections.abc import Iterator
from typing import ClassVar

import pytest

from norex.blocklist.build import build
from norex.errors import UsageError
from tests.unit.http_support import serving
from tests.unit.test_blocklist_cli import run, zones

GOOD = b"".join(b"0.0.0.0 name%d.cached.test\n" % n for n in range(40))


class Upstream(http.server.BaseHTTPRequestHandler):
    mode: ClassVar[str] = "good"
    asked: ClassVar[list[dict[str, str | None]]] = []

    def do_GET(self) -> None:
        Upstream.asked.append({k: self.headers.get(k) for k in ("If-None-Match", "If-Modified-Since")})
        if Upstream.mode == "good":
            if self.headers.get("If-None-Match") == '"v1"':
                self.send_response(304)
                self.end_headers()
                return
            self.reply(200, GOOD, {"ETag": '"v1"', "Last-Modified": "Thu, 03 Dec 2026 10:00:00 GMT"})
        elif Upstream.mode == "error":
            self.reply(500, b"boom")
        elif Upstream.mode == "truncated":
            self.reply(200, GOOD[:60], {"ETag": '"v2"'})
        elif Upstream.mode == "huge":  # 200 MB, no declared length
            self.send_response(200)
            self.end_headers()
            chunk = b"0.0.0.0 filler.cached.test\n" * 40000
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                for _ in range(200_000_000 // len(chunk)):
                    self.wfile.write(chunk)

    def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    Upstream.mode, Upstream.asked = "good", []
    with serving(Upstream) as base:
        yield f"{base}/list.txt"


def test_an_unchanged_source_is_asked_with_its_validators_and_costs_nothing(upstream, tmp_path):
    first = build([f"ads={upstream}"], tmp_path / "a", cache=tmp_path / "cache", now=1_800_000_000)
    second = build([f"ads={upstream}"], tmp_path / "b", cache=tmp_path / "cache", now=1_800_000_100)
    assert Upstream.asked == [
        {"If-None-Match": None, "If-Modified-Since": None},
        {"If-None-Match": '"v1"', "If-Modified-Since": "Thu, 03 Dec 2026 10:00:00 GMT"},
    ]
    assert first["output"] == second["output"] and second["sources"][0]["stale"] is None
    assert not any(upstream.encode() in p.read_bytes() for p in (tmp_path / "cache").iterdir())


@pytest.mark.parametrize(
    ("mode", "why"),
    [("error", "HTTP 500 Internal Server Error"), ("truncated", "the new copy has 2 names against 40: truncated?"),
     ("huge", "larger than the 134217728-byte limit")],
)  # fmt: skip
def test_a_failing_source_keeps_its_last_good_copy_with_a_one_line_warning(
    upstream, tmp_path, monkeypatch, capsys, mode, why
):
    cache = str(tmp_path / "cache")
    code, _, err = run(
        monkeypatch, capsys, "blocklist", "build", f"ads={upstream}", "--cache", cache, "--out", str(tmp_path / "a")
    )
    assert code == 0 and err == ""
    Upstream.mode = mode
    out = tmp_path / "b"
    code, _, err = run(
        monkeypatch, capsys, "blocklist", "build", f"ads={upstream}", "--cache", cache, "--out", str(out)
    )
    assert code == 0, err
    assert err.count("\n") == 1 and err.startswith(f"norex: warning: {upstream}: {why}; kept its copy of ")
    assert len(zones(out / "blocklist.conf")) == 40  # the previous list, in force
    Upstream.mode = "good"  # the good copy was not replaced by the bad one
    build([f"ads={upstream}"], tmp_path / "c", cache=tmp_path / "cache")
    assert Upstream.asked[-1]["If-None-Match"] == '"v1"'


def test_without_a_good_copy_a_failing_source_fails_the_build(upstream, tmp_path):
    Upstream.mode = "error"
    with pytest.raises(UsageError, match="HTTP 500"):
        build([f"ads={upstream}"], tmp_path / "a", cache=tmp_path / "cache")
    assert not (tmp_path / "a").exists()
