"""Converge a customer's server: the variables the control plane hands to site.yml (variables) and the
ansible-runner run that applies them (runner)."""

from __future__ import annotations

from collections.abc import Iterable

from norex.converge.runner import Converged, ConvergeFailed, run_site
from norex.converge.variables import Peer, site_variables
from norex.provision.interface import ServerHandle
from norex.settings import Settings

__all__ = ["ConvergeFailed", "Converged", "Peer", "converge", "site_variables"]


def converge(server: ServerHandle, settings: Settings, peers: Iterable[Peer]) -> Converged:
    """Make the server be what site.yml describes, with this customer's devices as its peers."""
    return run_site(server, site_variables(server, settings, peers), mitogen=settings.ansible_mitogen)
