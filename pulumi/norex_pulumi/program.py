"""The program: stack config -> one CustomerServer -> stack outputs (for `pulumi up` and the control plane)."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import pulumi

from .config import KEYS, NAMESPACE, parse_settings
from .customer_server import CustomerServer

COMPONENT_NAME = "customer"
OUTPUTS = ("serverId", "ipv4", "ipv6")


def stack_config() -> dict[str, Any]:
    """The stack's `norex:` config as raw values (strings, as Pulumi holds them), unknown keys included."""
    config = pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {key: config.get(key) for key in KEYS if config.get(key) is not None}
    # Report typos (`norex:servertype`) instead of silently using a default.
    everything = pulumi.runtime.config.CONFIG
    values = everything.get() if isinstance(everything, ContextVar) else everything
    prefix = f"{NAMESPACE}:"
    for full_key, value in dict(values).items():
        key = full_key[len(prefix) :] if full_key.startswith(prefix) else None
        if key is not None and key not in raw and key not in KEYS:
            raw[key] = value
    return raw


def build(raw: Mapping[str, Any]) -> CustomerServer:
    """Validate the config (all problems at once), declare the customer's server, export its outputs."""
    settings = parse_settings(raw)
    server = CustomerServer(COMPONENT_NAME, settings)
    pulumi.export("serverId", server.server_id)
    pulumi.export("ipv4", server.ipv4)
    pulumi.export("ipv6", server.ipv6)
    return server
