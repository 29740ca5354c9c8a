"""A throwaway HTTP server on 127.0.0.1 for the tests that need one."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

# The synthetic copies of the default blocklist sources the lab web site serves at /lists/KEY.
LISTS = Path(__file__).resolve().parents[2] / "norex" / "lab" / "data" / "lists"


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on an ephemeral loopback port in a thread; yields http://127.0.0.1:PORT."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving_default_lists() -> Iterator[str]:
    """The default sources' synthetic copies at BASE/KEY (what NOREX_BLOCKLIST_MIRROR points at)."""
    with serving(functools.partial(_Quiet, directory=str(LISTS))) as base:  # type: ignore[arg-type]
        yield base
