"""Signing an audit's Statement (a DSSE envelope, securesystemslib) and verifying it with only the public key.

Keys are the PEM files OpenSSL makes, so an auditor needs no tool of ours to make one:
    openssl genpkey -algorithm ed25519 -out audit.key
    openssl pkey -in audit.key -pubout -out audit.pub
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

from norex.audit.evidence import PAYLOAD_TYPE, canonical
from norex.errors import NorexError, UsageError


class BadEvidence(NorexError):
    """A report or envelope that does not verify: a bad signature, a digest that does not match, a bad file."""

    exit_code = 1
    transient = False


def _read_pem(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror}") from None


def load_private_key(path: Path) -> ed25519.Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read_pem(path, "signing key"), password=None)
    except (ValueError, TypeError):
        raise UsageError(
            f"{path} is not an unencrypted PEM private key (make one: openssl genpkey -algorithm ed25519)"
        ) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UsageError(f"{path} is not an Ed25519 key (make one: openssl genpkey -algorithm ed25519)")
    return key


def load_public_key(path: Path) -> ed25519.Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(_read_pem(path, "public key"))
    except (ValueError, TypeError):
        raise UsageError(f"{path} is not a PEM public key (make one: openssl pkey -in KEY -pubout)") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UsageError(f"{path} is not an Ed25519 public key")
    return key


def sign(statement: dict[str, Any], key: ed25519.Ed25519PrivateKey) -> dict[str, Any]:
    """The DSSE envelope (its JSON form) of the Statement, signed with key."""
    envelope = Envelope(payload=canonical(statement), payload_type=PAYLOAD_TYPE, signatures={})
    envelope.sign(CryptoSigner(key))
    return envelope.to_dict()


def unsigned(statement: dict[str, Any]) -> dict[str, Any]:
    """The same envelope without a signature: what `norex audit` writes when no --sign key is given."""
    return Envelope(payload=canonical(statement), payload_type=PAYLOAD_TYPE, signatures={}).to_dict()


def open_envelope(path: Path) -> Envelope:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        envelope = Envelope.from_dict(data)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BadEvidence(f"{path} is not a DSSE envelope") from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise BadEvidence(f"{path} does not hold an in-toto Statement (payload type {envelope.payload_type!r})")
    return envelope


def verify_signature(envelope: Envelope, public_key: ed25519.Ed25519PublicKey) -> None:
    if not envelope.signatures:
        raise BadEvidence("the envelope is not signed")
    try:
        envelope.verify([SSlibKey.from_crypto(public_key)], 1)
    except VerificationError:
        raise BadEvidence("the signature does not verify with this public key") from None


def statement_of(envelope: Envelope) -> dict[str, Any]:
    try:
        statement = json.loads(envelope.payload)
    except ValueError:
        raise BadEvidence("the envelope's payload is not JSON") from None
    if not isinstance(statement, dict) or statement.get("_type") != "https://in-toto.io/Statement/v1":
        raise BadEvidence("the envelope's payload is not an in-toto Statement v1")
    return statement
