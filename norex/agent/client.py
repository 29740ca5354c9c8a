"""The control plane's client of a server agent: mutual TLS with the agent CA, and the server's certificate pinned.

The CLI, the worker and the dashboard read live status and push peer sets through this one client. Its
errors name the server, never its address, a key or a response body.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import json
import ssl
from dataclasses import dataclass

from norex.agent.ca import AgentCA
from norex.errors import NorexError


class AgentError(NorexError):
    """The agent could not be reached, was not the pinned one, or refused the request (its one-line reason)."""

    transient = True


@dataclass(frozen=True)
class AgentClient:
    host: str
    port: int
    pin: str  # SHA-256 of the agent's certificate (DER), hex
    ca: AgentCA
    label: str = "the server"
    timeout: float = 5.0

    @functools.cached_property
    def _context(self) -> ssl.SSLContext:
        """Made once per client (2.5 ms: the CA and the client key read and parsed), for all its requests."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        # The agent's certificate is pinned below; its CA is ours, and no name is needed to trust it.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(self.ca.ca_certificate)
        context.load_cert_chain(self.ca.client_certificate, self.ca.client_key)
        return context

    def request(self, method: str, path: str, payload: object | None = None) -> dict:
        connection = http.client.HTTPSConnection(self.host, self.port, context=self._context, timeout=self.timeout)
        try:
            try:
                connection.connect()
            except (OSError, ssl.SSLError):
                raise AgentError(f"the agent of {self.label} cannot be reached") from None
            der = connection.sock.getpeercert(binary_form=True) if connection.sock else None
            if not der or hashlib.sha256(der).hexdigest() != self.pin:
                raise AgentError(f"the agent of {self.label} did not show the certificate pinned for it")
            body = None if payload is None else json.dumps(payload).encode()
            headers = {"Content-Type": "application/json"} if body is not None else {}
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                raw = response.read()
            except (OSError, ssl.SSLError, http.client.HTTPException):
                raise AgentError(f"the agent of {self.label} stopped answering") from None
        finally:
            connection.close()
        try:
            answer = json.loads(raw)
        except ValueError:
            raise AgentError(f"the agent of {self.label} answered with something that is not JSON") from None
        if response.status != 200:
            reason = answer.get("error", "") if isinstance(answer, dict) else ""
            raise AgentError(f"the agent of {self.label} refused ({response.status}): {reason}".rstrip(": "))
        return answer

    def health(self) -> dict:
        return self.request("GET", "/v1/health")

    def status(self) -> dict:
        return self.request("GET", "/v1/status")

    def dns(self) -> dict:
        return self.request("GET", "/v1/dns")

    def put_peers(self, peers: list[dict]) -> dict:
        return self.request("PUT", "/v1/peers", {"peers": peers})
