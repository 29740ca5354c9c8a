"""One provisioning interface (norex.provision.interface), two backends: `lab` (systemd-nspawn servers on
this machine) and `hcloud` (a Pulumi stack per customer on Hetzner Cloud)."""

from __future__ import annotations

from norex.errors import MissingPrerequisite, UsageError
from norex.provision.interface import (
    CUSTOMER_ID_RE,
    Provisioner,
    ResolverRoot,
    ServerHandle,
    check_customer_id,
    control_plane_id,
)

__all__ = [
    "CUSTOMER_ID_RE",
    "Provisioner",
    "ResolverRoot",
    "ServerHandle",
    "check_customer_id",
    "control_plane_id",
    "get_provisioner",
]


def get_provisioner(backend: str, owner: str, *, lab_image: str = "stock") -> Provisioner:
    """The backend's provisioner for one control plane (owner: see control_plane_id); lab_image: the lab
    backend's image for new servers (stock or prepared)."""
    if backend == "lab":
        from norex.provision.lab import LabProvisioner

        return LabProvisioner(owner, image=lab_image)
    if backend == "hcloud":
        try:
            from norex.provision.hcloud import HcloudProvisioner
        except ImportError as exc:
            raise MissingPrerequisite(f"the hcloud backend is not available here: {exc}") from None
        return HcloudProvisioner(owner)
    raise UsageError(f"unknown backend {backend!r}: choose lab or hcloud")
