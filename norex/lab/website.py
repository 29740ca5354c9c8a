"""The lab internet's tiny web site (www.example.test): a page, and /ip showing who asked.

/ip lets tests see which address a request came from, e.g. a device's traffic leaving through
its server. Run inside the lab internet namespace: python -m norex.lab.website ADDR...
"""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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
