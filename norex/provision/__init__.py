"""One provisioning interface, two backends: `lab` (systemd-nspawn servers here) and `hcloud` (Pulumi).

The control plane (worker, reconcile) speaks only to Provisioner; it cannot tell the backends apart.
Servers are named after the customer's opaque id (never an email or a Stripe id).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from norex.errors import MissingPrerequisite, UsageError

# The opaque customer id (norex.db): also a valid lab name, stack name and Hetzner label value.
CUSTOMER_ID_RE = re.compile(r"^c-[0-9a-f]{8,32}$")


@dataclass(frozen=True)
class Server:
    """A customer's server as a backend reports it, with what Ansible needs to reach it."""

    customer_id: str
    backend: str
    name: str
    ipv4: str
    ipv6: str
    # Inventory variables for this host: connection settings and backend facts (the lab's root hints...).
    ansible_vars: dict[str, Any] = field(default_factory=dict)


class Provisioner(Protocol):
    name: str

    def create(self, customer_id: str) -> Server:
        """Create the server (or return the one that exists) and return once it answers over SSH."""

    def destroy(self, customer_id: str) -> None:
        """Destroy the server and every trace of it; no error when it does not exist."""

    def find(self, customer_id: str) -> Server | None:
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


def get_provisioner(backend: str, owner: str) -> Provisioner:
    """The backend's provisioner for one control plane (owner: see control_plane_id)."""
    if backend == "lab":
        from norex.provision.lab import LabProvisioner

        return LabProvisioner(owner)
    if backend == "hcloud":
        try:
            from norex.provision.hcloud import HcloudProvisioner
        except ImportError as exc:
            raise MissingPrerequisite(f"the hcloud backend is not available here: {exc}") from None
        return HcloudProvisioner(owner)
    raise UsageError(f"unknown backend {backend!r}: choose lab or hcloud")
