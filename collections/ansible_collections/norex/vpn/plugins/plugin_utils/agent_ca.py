"""Certificates of the server agent's mutual TLS, with `cryptography`: one implementation for the converge
(plugins/filter/agent.py signs a server's CSR on the controller) and the control plane (norex/agent/ca.py
makes the CA and its own client certificate with these functions).

A server's agent makes its EC key on the server; only its certificate signing request leaves the server, and
the certificate issued for it names the server's addresses. The control plane pins that certificate by its
SHA-256 (`fingerprint`).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 825
# A server certificate this close to its end is replaced at the next converge.
RENEW_DAYS = 30


class CertificateError(ValueError):
    """A CSR or certificate that cannot be used; the message is one line and names no key."""


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    encoding, private = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, private, serialization.NoEncryption())


def certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def fingerprint(pem: bytes | str) -> str:
    """The SHA-256 of a certificate's DER form, in hex: what the control plane pins."""
    data = pem.encode() if isinstance(pem, str) else pem
    der = x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def self_signed_ca(key: ec.EllipticCurvePrivateKey, common_name: str) -> x509.Certificate:
    subject = name(common_name)
    usage = x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now() - datetime.timedelta(minutes=5))
        .not_valid_after(now() + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def load_ca(ca_key_pem: bytes, ca_certificate_pem: bytes) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError("the agent CA's key is not an EC key")
    return key, x509.load_pem_x509_certificate(ca_certificate_pem)


def issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    server: bool,
    addresses: list[str] = (),  # type: ignore[assignment]
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> x509.Certificate:
    """A leaf certificate from the CA: for a server (serverAuth, its IP addresses) or a client (clientAuth)."""
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now() - datetime.timedelta(minutes=5))
        .not_valid_after(not_after or now() + datetime.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if addresses:
        alt = [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def sign_csr(csr_pem: bytes, ca_key_pem: bytes, ca_certificate_pem: bytes, common_name: str, addresses) -> bytes:
    """The server certificate for an agent's CSR: the key it holds (never seen here), the server's addresses."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise CertificateError("the agent's certificate request is not a PEM CSR") from None
    try:
        valid = csr.is_signature_valid
    except InvalidSignature:
        valid = False
    if not valid:
        raise CertificateError("the agent's certificate request has a bad signature")
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.key_size < 256:
        raise CertificateError("the agent's key must be an EC key of at least 256 bits")
    ca_key, ca = load_ca(ca_key_pem, ca_certificate_pem)
    return certificate_pem(issue(ca_key, ca, name(common_name), public_key, True, list(addresses)))


def needs_new_certificate(certificate: str, ca_certificate_pem: bytes, public_key_pem: str, addresses) -> str:
    """Why a server must get a new certificate ("" when the one it has will do): missing, another CA's, not for
    its key, not for its addresses, or ending within RENEW_DAYS."""
    if not certificate.strip():
        return "none yet"
    try:
        cert = x509.load_pem_x509_certificate(certificate.encode())
        ca = x509.load_pem_x509_certificate(ca_certificate_pem)
        held = serialization.load_pem_public_key(public_key_pem.encode())
    except ValueError:
        return "unreadable"
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return "issued by another CA"
    if cert.public_key() != held:
        return "for another key"
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        named = sorted(str(a) for a in alt.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        named = []
    if named != sorted(str(ipaddress.ip_address(a)) for a in addresses):
        return "for other addresses"
    if cert.not_valid_after_utc - now() < datetime.timedelta(days=RENEW_DAYS):
        return "ending soon"
    return ""
