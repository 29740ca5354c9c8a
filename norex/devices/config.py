"""A device's key pair and its wg-quick config. The private key is put in the config shown once, never stored."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from norex.tunnel import TUNNEL, TunnelPlan


def keypair() -> tuple[str, str]:
    """A WireGuard key pair (X25519, base64): private, public."""
    private = X25519PrivateKey.generate()
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode(), base64.b64encode(public).decode()


def client_config(
    private_key: str, ipv4: str, ipv6: str, server_public_key: str, server_address: str, tunnel: TunnelPlan = TUNNEL
) -> str:
    return (
        "[Interface]\n"
        f"PrivateKey = {private_key}\n"
        f"Address = {ipv4}/32, {ipv6}/128\n"
        f"DNS = {', '.join(tunnel.dns)}\n\n"
        "[Peer]\n"
        f"PublicKey = {server_public_key}\n"
        "AllowedIPs = 0.0.0.0/0, ::/0\n"
        f"Endpoint = {server_address}:{tunnel.port}\n"
        "PersistentKeepalive = 25\n"
    )
