"""The control plane's CA for the server agents' mutual TLS.

One folder (0700, outside the repository; NOREX_AGENT_CA_DIR) holds the CA's key and certificate and the
control plane's own client key and certificate, keys 0600. A server's agent makes its private key on the
server; the converge brings back only its certificate signing request and signs it on the controller with
the collection's filter (plugins/filter/agent.py), from this folder. The certificate code itself is the
collection's (plugins/plugin_utils/agent_ca.py): one implementation for both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from norex.collection import agent_ca
from norex.errors import UsageError

fingerprint = agent_ca.fingerprint


def _write_private(path: Path, data: bytes) -> None:
    """A key file created 0600 (never readable by others, not even for a moment), replaced atomically."""
    temporary = path.with_name(f".{path.name}.new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


@dataclass(frozen=True)
class AgentCA:
    folder: Path

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def ca_certificate(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def client_key(self) -> Path:
        return self.folder / "client.key"

    @property
    def client_certificate(self) -> Path:
        return self.folder / "client.crt"

    def ensure(self) -> AgentCA:
        """Make the CA and the control plane's client certificate if they are not there yet."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        if not (self.ca_key.exists() and self.ca_certificate.exists()):
            key = agent_ca.new_key()
            _write_private(self.ca_key, agent_ca.key_pem(key))
            self.ca_certificate.write_bytes(agent_ca.certificate_pem(agent_ca.self_signed_ca(key, "NorexVPN agent CA")))
            for stale in (self.client_key, self.client_certificate):
                stale.unlink(missing_ok=True)
        if not (self.client_key.exists() and self.client_certificate.exists()):
            key_pem, certificate_pem = self.issue_client("NorexVPN control plane")
            _write_private(self.client_key, key_pem)
            self.client_certificate.write_bytes(certificate_pem)
        return self

    def _signer(self):
        try:
            return agent_ca.load_ca(self.ca_key.read_bytes(), self.ca_certificate.read_bytes())
        except (OSError, ValueError) as exc:
            raise UsageError(f"the agent CA in {self.folder} cannot be read: {type(exc).__name__}") from None

    def sign_server(self, csr_pem: bytes, name: str, addresses: list[str]) -> bytes:
        """A server certificate for an agent's CSR (as the converge's filter signs it)."""
        try:
            return agent_ca.sign_csr(
                csr_pem, self.ca_key.read_bytes(), self.ca_certificate.read_bytes(), name, addresses
            )
        except agent_ca.CertificateError as exc:
            raise UsageError(str(exc)) from None

    def issue_client(self, name: str, not_before=None, not_after=None) -> tuple[bytes, bytes]:
        """A client key and certificate from this CA (key PEM, certificate PEM): the control plane's, or a test's."""
        ca_key, ca = self._signer()
        key = agent_ca.new_key()
        certificate = agent_ca.issue(
            ca_key, ca, agent_ca.name(name), key.public_key(), False, not_before=not_before, not_after=not_after
        )
        return agent_ca.key_pem(key), agent_ca.certificate_pem(certificate)


def make_csr(common_name: str) -> tuple[bytes, bytes]:
    """A key and a CSR as an agent makes them (key PEM, CSR PEM); on a server the role does this with openssl."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    key = agent_ca.new_key()
    csr = x509.CertificateSigningRequestBuilder().subject_name(agent_ca.name(common_name)).sign(key, hashes.SHA256())
    return agent_ca.key_pem(key), csr.public_bytes(serialization.Encoding.PEM)
