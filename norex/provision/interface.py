"""What every provisioning backend offers the control plane, and the handle it returns for a server.

The control plane (worker, reconcile, converge) speaks only to Provisioner and reads only ServerHandle; it
cannot tell the backends apart. Servers are named after the customer's opaque id (never an email or a
Stripe id).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from norex.errors import UsageError

# The opaque customer id (norex.db): also a valid lab name, stack name and Hetzner label value.
CUSTOMER_ID_RE = re.compile(r"^c-[0-9a-f]{8,32}$")


@dataclass(frozen=True)
class ResolverRoot:
    """A DNS root of the backend's own (the lab's): where the resolver recurses from and its trust anchors."""

    hints: str
    trust_anchors: tuple[str, ...]


@dataclass(frozen=True)
class ServerHandle:
    """A customer's server as a backend reports it (the database row is norex.db.models.Server).

    Facts about the server and its network only; norex.converge.variables turns them into role variables.
    """

    customer_id: str
    backend: str
    name: str
    ipv4: str
    ipv6: str
    # How Ansible reaches the host: ansible_host, ansible_port, ansible_user, key, ssh arguments, interpreter.
    connection: dict[str, Any] = field(default_factory=dict)
    # Where SSH may come from (ops networks, and the control plane that converges it).
    ops_cidrs: tuple[str, ...] = ()
    # Where the control plane's own requests come from (the agent's port is open to these only).
    control_plane_cidrs: tuple[str, ...] = ()
    # None: the resolver recurses from the real root with the real trust anchor.
    resolver_root: ResolverRoot | None = None


class Provisioner(Protocol):
    name: str

    def blocklist_mirror(self) -> str | None:
        """Where this backend's control plane fetches the default blocklist sources from (BASE/KEY), when not
        from their homes; None: their homes. Raises when that place cannot be reached now."""

    def create(self, customer_id: str) -> ServerHandle:
        """Create the server (or return the one that exists) and return once it answers over SSH."""

    def destroy(self, customer_id: str) -> None:
        """Destroy the server and every trace of it; no error when it does not exist."""

    def find(self, customer_id: str) -> ServerHandle | None:
        """The server if it exists (whatever state it is in), else None."""

    def existing(self) -> set[str]:
        """Customer ids of every server this backend holds (to find orphans)."""


def control_plane_id(database_url: str) -> str:
    """Names the control plane a server belongs to: every process of one plane shares its database."""
    return "cp-" + hashlib.sha256(database_url.encode()).hexdigest()[:16]


def check_customer_id(customer_id: str) -> str:
    if not isinstance(customer_id, str) or not CUSTOMER_ID_RE.fullmatch(customer_id):
        # Never echo the value: a wrong one may be an email or a Stripe id.
        raise UsageError("not an opaque customer id (c- and 8-32 hex digits)")
    return customer_id
