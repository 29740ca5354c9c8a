"""Run localstripe (the Stripe stand-in used by `norex demo` and the end-to-end tests) on loopback only.

Its own launcher binds every interface, logs every request and pickles its whole store (customer
emails included) to /tmp after each change; this one binds 127.0.0.1, logs nothing and keeps the
store in memory.

    python -m norex.stripe_standin PORT
"""

from __future__ import annotations

import socket
import sys


def serve(port: int) -> None:
    from aiohttp import web
    from localstripe import resources, server

    resources.Store.dump_to_disk = lambda self: None  # memory only
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    web.run_app(server.app, sock=sock, access_log=None, print=None, handle_signals=True)


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: python -m norex.stripe_standin PORT")
    serve(int(sys.argv[1]))
