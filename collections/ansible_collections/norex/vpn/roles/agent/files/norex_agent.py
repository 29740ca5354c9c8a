#!/usr/bin/python3
"""norex-agent: the one piece of control software on a NorexVPN server.

Python's standard library only (Debian's python3; nothing compiled, nothing from pip). HTTPS with mutual
TLS: only a client certificate signed by the control plane's CA gets past the handshake, and no HTTP is read
before that. JSON API, versioned:

    GET /v1/health   version and uptime only
    GET /v1/status   per peer public key: online (latest handshake younger than online_seconds), rx/tx bytes
    PUT /v1/peers    the complete desired peer set {"peers": [{"public_key", "addresses"}]}
    GET /v1/dns      the resolver's anonymous tally (norex-dns-tally)

It keeps nothing between requests and writes no log: no access log, and errors go to stderr as a fixed
message without any request data (the unit sends stderr to the volatile journal or nowhere). WireGuard
keeps each peer's last endpoint (a device's home address) for as long as the peer exists; every
purge_interval seconds the agent removes and re-adds each peer whose latest handshake is older than
online_seconds, so that a device that went away leaves no address behind. The device, which initiates,
reconnects on its next packet.

The peer set is checked by the same rules as the wireguard role's input (norex_vpn/wg_peers.py, the
collection's own file installed beside this one), applied with `wg set` (the private key is never read)
and written to the interface's config so that it survives a reboot.

Usage: norex_agent.py CONFIG.json      (the role writes the config; see roles/agent/README.md)
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from norex_vpn.wg_peers import wg_peer_errors

VERSION = "1"
MAX_BODY = 1024 * 1024
HANDSHAKE_TIMEOUT = 10
REQUEST_TIMEOUT = 30


class BadRequest(Exception):
    """A request the agent refuses: (status, one-line reason). The reason never repeats request data."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def complain(message: str) -> None:
    """The only thing the agent ever writes: a fixed message, never request data."""
    print(f"norex-agent: {message}", file=sys.stderr, flush=True)


class WireGuard:
    """The interface, read and changed through wg(8); one lock orders changes and the endpoint purge."""

    def __init__(self, config: dict):
        self.interface = config["interface"]
        self.config_path = config["config_path"]
        self.ipv4_subnet = config["ipv4_subnet"]
        self.ipv6_subnet = config["ipv6_subnet"]
        self.server_public_key = config.get("server_public_key", "")
        self.online_seconds = int(config["online_seconds"])
        self.lock = threading.Lock()

    def _wg(self, *args: str, stdin: str | None = None) -> str:
        proc = subprocess.run(
            ["wg", *args], input=stdin, capture_output=True, text=True, check=False, timeout=REQUEST_TIMEOUT
        )
        if proc.returncode != 0:
            raise RuntimeError("wg failed")
        return proc.stdout

    def peers(self) -> list[dict]:
        """Every peer now: key, addresses, latest handshake, counters, whether an endpoint is known.

        Read from `wg show IF dump`; its first line (the interface, with its private key) is dropped unread.
        """
        peers = []
        for line in self._wg("show", self.interface, "dump").splitlines()[1:]:
            fields = line.split("\t")
            if len(fields) < 8:
                continue
            allowed = [] if fields[3] == "(none)" else fields[3].split(",")
            peers.append(
                {
                    "public_key": fields[0],
                    "has_endpoint": fields[2] != "(none)",
                    "addresses": allowed,
                    "handshake": int(fields[4]),
                    "rx_bytes": int(fields[5]),
                    "tx_bytes": int(fields[6]),
                }
            )
        return peers

    def online(self, peer: dict, now: float) -> bool:
        return peer["handshake"] > 0 and now - peer["handshake"] < self.online_seconds

    def status(self) -> dict:
        now = time.time()
        return {
            "online_seconds": self.online_seconds,
            "peers": [
                {
                    "public_key": p["public_key"],
                    "online": self.online(p, now),
                    "rx_bytes": p["rx_bytes"],
                    "tx_bytes": p["tx_bytes"],
                }
                for p in self.peers()
            ],
        }

    def check(self, body: object) -> list[dict]:
        """The peer set of a PUT, checked by the role's own rules; BadRequest with the first problem."""
        if not isinstance(body, dict) or set(body) != {"peers"}:
            raise BadRequest(400, 'the body must be a JSON object {"peers": [...]}')
        peers = body["peers"]
        errors = wg_peer_errors(peers, self.ipv4_subnet, self.ipv6_subnet, self.server_public_key, name="peers")
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise BadRequest(400, errors[0] + more)
        return [
            {"public_key": p["public_key"], "addresses": [str(ipaddress.ip_network(a.strip())) for a in p["addresses"]]}
            for p in peers
        ]

    def apply(self, wanted: list[dict]) -> dict:
        """Make the interface's peers exactly `wanted`; flush what removed peers' addresses left in conntrack."""
        with self.lock:
            running = {p["public_key"]: p for p in self.peers()}
            wanted_keys = {p["public_key"] for p in wanted}
            removed = [p for key, p in running.items() if key not in wanted_keys]
            args: list[str] = []
            for peer in removed:
                args += ["peer", peer["public_key"], "remove"]
            changed = 0
            for peer in wanted:
                have = running.get(peer["public_key"])
                if have is None or sorted(have["addresses"]) != sorted(peer["addresses"]):
                    args += ["peer", peer["public_key"], "allowed-ips", ",".join(peer["addresses"])]
                    changed += 1
            if args:
                self._wg("set", self.interface, *args)
            self.write_config(wanted)
            for peer in removed:
                flush_conntrack(peer["addresses"])
            return {"added_or_changed": changed, "removed": len(removed), "peers": len(wanted)}

    def write_config(self, wanted: list[dict]) -> None:
        """The interface's config with this peer set, written atomically; as the role's template writes it."""
        with open(self.config_path, encoding="utf-8") as handle:
            text = handle.read()
        head = text.split("\n\n[Peer]\n", 1)[0].rstrip("\n") + "\n"
        body = "".join(
            f"\n[Peer]\nPublicKey = {p['public_key']}\nAllowedIPs = {', '.join(p['addresses'])}\n" for p in wanted
        )
        if head + body == text:
            return
        folder = os.path.dirname(self.config_path)
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".norex-agent-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(head + body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.config_path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise

    def purge_endpoints(self) -> int:
        """Remove and re-add every peer whose last handshake is older than online_seconds and whose endpoint
        WireGuard still holds: the address goes; key and allowed IPs stay. Returns how many were purged."""
        with self.lock:
            now = time.time()
            args: list[str] = []
            stale = [p for p in self.peers() if p["has_endpoint"] and not self.online(p, now)]
            for peer in stale:
                args += ["peer", peer["public_key"], "remove"]
            if not stale:
                return 0
            self._wg("set", self.interface, *args)
            again: list[str] = []
            for peer in stale:
                again += ["peer", peer["public_key"], "allowed-ips", ",".join(peer["addresses"])]
            self._wg("set", self.interface, *again)
            return len(stale)


def flush_conntrack(addresses: list[str]) -> None:
    """Delete the connection-tracking entries whose source is one of these tunnel addresses."""
    for address in addresses:
        host = address.split("/", 1)[0]
        family = "ipv6" if ":" in host else "ipv4"
        # conntrack exits 1 when there was nothing to delete.
        try:
            subprocess.run(
                ["conntrack", "--delete", "--family", family, "--orig-src", host],
                capture_output=True,
                check=False,
                timeout=REQUEST_TIMEOUT,
            )
        except (OSError, subprocess.TimeoutExpired):
            complain("conntrack could not delete a removed device's entries")


class Handler(BaseHTTPRequestHandler):
    server_version = "norex-agent"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    error_content_type = "application/json"
    error_message_format = '{"error": "%(message)s"}'

    def log_message(self, format, *args):
        """No access log, and no error log carrying request data."""

    def send_json(self, status: int, payload: dict) -> None:
        body = (json.dumps(payload, separators=(",", ":")) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def refuse(self, status: int, reason: str) -> None:
        self.close_connection = True
        self.send_json(status, {"error": reason})

    def route(self, method: str):
        agent = self.server.agent
        routes = {
            ("GET", "/v1/health"): agent.health,
            ("GET", "/v1/status"): agent.wireguard.status,
            ("GET", "/v1/dns"): agent.dns,
            ("PUT", "/v1/peers"): lambda: agent.wireguard.apply(agent.wireguard.check(self.read_json())),
        }
        handler = routes.get((method, self.path))
        if handler is None:
            known = {path for _, path in routes}
            if self.path in known:
                raise BadRequest(405, "method not allowed here")
            raise BadRequest(404, "no such endpoint (see /v1/health, /v1/status, /v1/peers, /v1/dns)")
        return handler()

    def read_json(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise BadRequest(411, "a Content-Length is needed")
        if int(length) > MAX_BODY:
            raise BadRequest(413, f"the body is over {MAX_BODY} bytes")
        raw = self.rfile.read(int(length))
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest(400, "the body is not JSON") from None

    def handle_method(self, method: str) -> None:
        try:
            self.send_json(200, self.route(method))
        except BadRequest as refused:
            self.refuse(refused.status, refused.reason)
        except Exception:
            complain("a request failed")
            self.refuse(500, "the agent could not do that")

    def do_GET(self):
        self.handle_method("GET")

    def do_PUT(self):
        self.handle_method("PUT")

    def do_POST(self):
        self.handle_method("POST")

    def do_DELETE(self):
        self.handle_method("DELETE")


class TLSServer(ThreadingHTTPServer):
    """One listening address. The TLS handshake runs in the connection's own thread, before any HTTP."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, agent: Agent):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.context = context
        self.agent = agent
        super().__init__(address, Handler)

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        socket.socket.setsockopt(self.socket, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()[:2]
        self.server_name = "norex-agent"
        self.server_port = self.server_address[1]

    def finish_request(self, request, client_address):
        request.settimeout(HANDSHAKE_TIMEOUT)
        # Headers and body leave as separate TLS records: without this, Nagle's algorithm holds the second
        # until the client's delayed ACK (40 ms) on every answer.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            request.close()  # refused in the handshake: no certificate, or not one of ours
            return
        tls.settimeout(REQUEST_TIMEOUT)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()

    def handle_error(self, request, client_address):
        complain("a connection failed")


class Agent:
    def __init__(self, config: dict):
        self.config = config
        self.started = time.monotonic()
        self.wireguard = WireGuard(config)
        self.tally = config.get("dns_tally", "/usr/local/sbin/norex-dns-tally")
        self.purge_interval = int(config.get("purge_interval", 30))

    def health(self) -> dict:
        return {"version": VERSION, "uptime_seconds": int(time.monotonic() - self.started)}

    def dns(self) -> dict:
        proc = subprocess.run([self.tally], capture_output=True, text=True, check=False, timeout=REQUEST_TIMEOUT)
        if proc.returncode != 0:
            raise BadRequest(503, "the resolver's tally is not available")
        return json.loads(proc.stdout)

    def context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_cert_chain(self.config["certificate"], self.config["key"])
        context.load_verify_locations(self.config["client_ca"])
        return context

    def purge_forever(self) -> None:
        while True:
            time.sleep(self.purge_interval)
            try:
                self.wireguard.purge_endpoints()
            except Exception:
                complain("the endpoint purge failed")

    def serve(self) -> None:
        context = self.context()
        servers = [TLSServer((address, int(self.config["port"])), context, self) for address in self.config["listen"]]
        threading.Thread(target=self.purge_forever, daemon=True).start()
        for server in servers[1:]:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[0].serve_forever()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        complain("usage: norex_agent.py CONFIG.json")
        return 2
    try:
        with open(argv[1], encoding="utf-8") as handle:
            config = json.load(handle)
        agent = Agent(config)
        agent.serve()
    except (OSError, ValueError, KeyError, ssl.SSLError) as exc:
        complain(f"cannot start: {type(exc).__name__}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
