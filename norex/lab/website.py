"""The lab internet's tiny web site (www.example.test): a page, /ip showing who asked, and /lists/KEY.

/ip lets tests see which address a request came from, e.g. a device's traffic leaving through
its server. /lists/KEY serves the synthetic copy of a default blocklist source (norex/lab/data/lists), with an
ETag, answering 304 to a matching If-None-Match, as the lists' real homes do. Run inside the lab internet
namespace: python -m norex.lab.website ADDR...
"""

from __future__ import annotations

import hashlib
import re
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LISTS = Path(__file__).with_name("data") / "lists"
LIST_KEY = re.compile(r"/lists/([a-z0-9-]{1,64})")
PAGE = b"<!doctype html><title>norex lab</title><h1>www.example.test</h1><p>norex lab web site</p>\n"


class Handler(BaseHTTPRequestHandler):
    server_version = "norexlab"
    sys_version = ""

    def do_GET(self) -> None:
        if self.path == "/ip":
            body = (self.client_address[0] + "\n").encode()
            ctype = "text/plain"
        elif self.path in ("/", "/index.html"):
            body, ctype = PAGE, "text/html"
        elif (found := LIST_KEY.fullmatch(self.path)) and (LISTS / found.group(1)).is_file():
            body, ctype = (LISTS / found.group(1)).read_bytes(), "text/plain"
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("ETag", etag)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """No request log."""


class Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def main(addresses: list[str]) -> None:
    servers = [(Server6 if ":" in a else ThreadingHTTPServer)((a, 80), Handler) for a in addresses]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main(sys.argv[1:])
