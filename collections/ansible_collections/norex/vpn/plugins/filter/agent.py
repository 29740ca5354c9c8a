"""Filters of norex.vpn.agent: the agent's certificate, signed on the controller from the control plane's CA.

The CA folder (agent_ca_dir: ca.key, ca.crt) is on the controller; only a server's certificate signing request
and the certificate made for it cross the connection. The certificate code is shared with the control plane
(plugin_utils/agent_ca.py).
"""

from __future__ import annotations

from pathlib import Path

from ansible.errors import AnsibleFilterError
from ansible_collections.norex.vpn.plugins.plugin_utils import agent_ca


def _ca(ca_dir) -> tuple[bytes, bytes]:
    folder = Path(str(ca_dir))
    try:
        return (folder / "ca.key").read_bytes(), (folder / "ca.crt").read_bytes()
    except OSError as exc:
        raise AnsibleFilterError(f"agent_ca_dir {folder}: cannot read ca.key and ca.crt ({exc.strerror})") from None


def agent_sign_csr(csr, ca_dir, common_name, addresses) -> str:
    """The certificate (PEM) for an agent's CSR, naming the server's addresses."""
    key, certificate = _ca(ca_dir)
    try:
        return agent_ca.sign_csr(str(csr).encode(), key, certificate, str(common_name), list(addresses)).decode()
    except agent_ca.CertificateError as exc:
        raise AnsibleFilterError(str(exc)) from None


def agent_certificate_problem(certificate, ca_dir, public_key, addresses) -> str:
    """Why the server needs a new agent certificate; empty when the one it has will do."""
    _, ca_certificate = _ca(ca_dir)
    return agent_ca.needs_new_certificate(str(certificate or ""), ca_certificate, str(public_key), list(addresses))


def agent_fingerprint(certificate) -> str:
    """The SHA-256 (hex) of the certificate the control plane pins."""
    return agent_ca.fingerprint(str(certificate))


class FilterModule:
    def filters(self):
        return {
            "agent_sign_csr": agent_sign_csr,
            "agent_certificate_problem": agent_certificate_problem,
            "agent_fingerprint": agent_fingerprint,
        }
