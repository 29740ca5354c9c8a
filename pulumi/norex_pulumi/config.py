"""Stack config (namespace `norex`) -> validated, frozen settings.

Pure: no Pulumi import, so it is testable on its own and the control plane can validate a customer's
settings before it ever creates a stack. Every problem is reported, each as one actionable line.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NAMESPACE = "norex"

# The opaque customer id, the only customer-derived value that reaches Hetzner (labels, names).
# "c-" and 8 to 32 lowercase hex digits: an email address or a Stripe id (cus_..., sub_...) can never match.
CUSTOMER_ID_PATTERN = re.compile(r"^c-[0-9a-f]{8,32}$")

# Hetzner Cloud server types offered when this list was written (2026). The live list is Hetzner's
# (`hcloud server-type list`); a type Hetzner adds later goes into `extraServerTypes`.
EU_LOCATIONS = ("fsn1", "nbg1", "hel1")
LOCATIONS = (*EU_LOCATIONS, "ash", "hil", "sin")
_ALL = LOCATIONS
SERVER_TYPES: dict[str, tuple[str, ...]] = {
    # shared vCPU, cost-optimised (Intel/AMD), EU only
    **{t: EU_LOCATIONS for t in ("cx23", "cx33", "cx43", "cx53")},
    # shared vCPU, AMD
    **{t: _ALL for t in ("cpx11", "cpx21", "cpx31", "cpx41", "cpx51")},
    # shared vCPU, Arm (Ampere), EU only
    **{t: EU_LOCATIONS for t in ("cax11", "cax21", "cax31", "cax41")},
    # dedicated vCPU, AMD
    **{t: _ALL for t in ("ccx13", "ccx23", "ccx33", "ccx43", "ccx53", "ccx63")},
}
# Types Hetzner has retired or is retiring, with the current type to use instead.
RETIRED_SERVER_TYPES = {
    "cx11": "cx23",
    "cx21": "cx23",
    "cx31": "cx33",
    "cx41": "cx43",
    "cx51": "cx53",
    "cx22": "cx23",
    "cx32": "cx33",
    "cx42": "cx43",
    "cx52": "cx53",
}

# A source range at least this wide counts as "the whole internet" for SSH and the agent.
WORLD_PREFIX = {4: 8, 6: 16}

DEFAULTS: dict[str, Any] = {
    "serverType": "cx23",
    "location": "fsn1",
    "image": "debian-12",
    "controlPlaneCidrs": [],
    "wireguardPort": 51820,
    "agentPort": 8443,
    "protection": True,
    "extraServerTypes": [],
    "extraLocations": [],
}
REQUIRED = ("customerId", "opsCidrs", "opsSshKeyIds")
KEYS = (*REQUIRED, *DEFAULTS)

_IMAGE = re.compile(r"^(debian-12|[1-9][0-9]{0,18})$")
_TYPE_NAME = re.compile(r"^[a-z]{2,5}[0-9]{1,4}$")
_LOCATION_NAME = re.compile(r"^[a-z]{3}[0-9]?$")


class ConfigError(ValueError):
    """Stack config that cannot make a customer server; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid stack config:\n" + "\n".join(f"  {NAMESPACE}:{p}" for p in problems))


@dataclass(frozen=True)
class ServerSettings:
    customer_id: str
    server_type: str
    location: str
    image: str
    ops_cidrs: tuple[str, ...]
    control_plane_cidrs: tuple[str, ...]
    ops_ssh_key_ids: tuple[int, ...]
    wireguard_port: int
    agent_port: int
    protection: bool

    @property
    def labels(self) -> dict[str, str]:
        """Exactly these two labels: nothing personal reaches the provider."""
        return {"norex-customer": self.customer_id, "managed-by": "norex"}

    @property
    def server_name(self) -> str:
        return f"norex-{self.customer_id}"

    @property
    def management_cidrs(self) -> tuple[str, ...]:
        """Where SSH and the agent are reachable from: ops and the control plane, nowhere else."""
        return tuple(dict.fromkeys((*self.ops_cidrs, *self.control_plane_cidrs)))


def parse_settings(raw: Mapping[str, Any]) -> ServerSettings:
    """Validate stack config (plain values, or the strings Pulumi config holds) into settings."""
    problems: list[str] = []
    unknown = sorted(set(raw) - set(KEYS))
    problems += [f"{k}: unknown config key (known: {', '.join(KEYS)})" for k in unknown]
    missing = [k for k in REQUIRED if raw.get(k) in (None, "")]
    problems += [f"{k}: required, not set (`pulumi config set {NAMESPACE}:{k} ...`)" for k in missing]
    value = {**DEFAULTS, **{k: v for k, v in raw.items() if v is not None}}

    customer_id = _string(value, "customerId", problems) if "customerId" not in missing else ""
    if customer_id and not CUSTOMER_ID_PATTERN.match(customer_id):
        problems.append(
            f"customerId: {_shown(customer_id)} is not an opaque customer id (expected c- and 8-32 lowercase hex "
            "digits, e.g. c-3f9a1c7e; never an email or a Stripe id)"
        )

    extra_types = _names(value, "extraServerTypes", _TYPE_NAME, problems)
    extra_locations = _names(value, "extraLocations", _LOCATION_NAME, problems)
    location = _string(value, "location", problems)
    if location and location not in LOCATIONS and location not in extra_locations:
        problems.append(
            f"location: unknown location {location!r} (known: {', '.join(LOCATIONS)}; "
            "add a new Hetzner location to extraLocations)"
        )
    server_type = _string(value, "serverType", problems)
    if server_type in RETIRED_SERVER_TYPES and server_type not in extra_types:
        problems.append(
            f"serverType: {server_type!r} is retired by Hetzner; use {RETIRED_SERVER_TYPES[server_type]!r} instead"
        )
    elif server_type and server_type not in SERVER_TYPES and server_type not in extra_types:
        problems.append(
            f"serverType: unknown server type {server_type!r} (known: {', '.join(SERVER_TYPES)}; "
            "add a new Hetzner type to extraServerTypes)"
        )
    elif server_type in SERVER_TYPES and location in LOCATIONS and location not in SERVER_TYPES[server_type]:
        problems.append(
            f"serverType: {server_type!r} is not offered in {location!r} "
            f"(only in {', '.join(SERVER_TYPES[server_type])})"
        )

    image = _string(value, "image", problems)
    if image and not _IMAGE.match(image):
        problems.append(
            f"image: {image!r} is not allowed: use 'debian-12' or the numeric id of a prepared snapshot built "
            "from it with the norex roles"
        )

    ops_cidrs = _cidrs(value, "opsCidrs", problems, required=True) if "opsCidrs" not in missing else ()
    control_plane_cidrs = _cidrs(value, "controlPlaneCidrs", problems, required=False)
    key_ids = _key_ids(value, "opsSshKeyIds", problems) if "opsSshKeyIds" not in missing else ()
    wireguard_port = _port(value, "wireguardPort", problems)
    agent_port = _port(value, "agentPort", problems)
    if agent_port and agent_port == wireguard_port:
        problems.append(f"agentPort: {agent_port} is also the wireguardPort; they must differ")
    for key, port in (("wireguardPort", wireguard_port), ("agentPort", agent_port)):
        if port == 22:
            problems.append(f"{key}: 22 is the SSH port; choose another port")
    protection = _bool(value, "protection", problems)

    if problems:
        raise ConfigError(problems)
    return ServerSettings(
        customer_id=customer_id,
        server_type=server_type,
        location=location,
        image=image,
        ops_cidrs=ops_cidrs,
        control_plane_cidrs=control_plane_cidrs,
        ops_ssh_key_ids=key_ids,
        wireguard_port=wireguard_port,
        agent_port=agent_port,
        protection=protection,
    )


def _shown(text: str) -> str:
    """Quote a bad value without echoing what may be personal data (an email, a Stripe id) into logs."""
    if "@" in text or re.match(r"^[a-z]{2,5}_", text):
        return "the value given (not shown: it looks like personal data)"
    return repr(text)


def _string(value: Mapping[str, Any], key: str, problems: list[str]) -> str:
    v = value.get(key)
    if not isinstance(v, str) or not v.strip():
        problems.append(f"{key}: expected a non-empty string, got {type(v).__name__}")
        return ""
    return v.strip()


def _list(value: Mapping[str, Any], key: str, problems: list[str]) -> list[Any] | None:
    v = value.get(key)
    if isinstance(v, str):  # Pulumi config holds structured values as JSON text
        try:
            v = json.loads(v)
        except ValueError:
            problems.append(f"{key}: expected a list (e.g. `pulumi config set --path '{NAMESPACE}:{key}[0]' ...`)")
            return None
    if not isinstance(v, list | tuple):
        problems.append(f"{key}: expected a list, got {type(v).__name__}")
        return None
    return list(v)


def _names(value: Mapping[str, Any], key: str, pattern: re.Pattern[str], problems: list[str]) -> tuple[str, ...]:
    items = _list(value, key, problems) or []
    bad = [i for i in items if not isinstance(i, str) or not pattern.match(i)]
    if bad:
        problems.append(f"{key}: {bad!r} are not Hetzner names")
    return tuple(i for i in items if i not in bad)


def _cidrs(value: Mapping[str, Any], key: str, problems: list[str], *, required: bool) -> tuple[str, ...]:
    items = _list(value, key, problems)
    if items is None:
        return ()
    if required and not items:
        problems.append(f"{key}: at least one CIDR is required")
    result: list[str] = []
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        if not isinstance(item, str) or "/" not in item:
            problems.append(f"{where}: {item!r} is not a CIDR (write it with a prefix, e.g. 203.0.113.7/32)")
            continue
        try:
            net = ipaddress.ip_network(item.strip(), strict=True)
        except ValueError as exc:
            hint = ""
            with contextlib.suppress(ValueError):
                hint = f"; did you mean {ipaddress.ip_network(item.strip(), strict=False)}?"
            problems.append(f"{where}: {item!r} is not a valid CIDR ({exc}{hint})")
            continue
        if net.prefixlen < WORLD_PREFIX[net.version]:
            problems.append(
                f"{where}: {net} is too wide: SSH and the agent would be open to (a large part of) the internet; "
                f"use a prefix of /{WORLD_PREFIX[net.version]} or narrower"
            )
            continue
        result.append(str(net))
    return tuple(dict.fromkeys(result))


def _key_ids(value: Mapping[str, Any], key: str, problems: list[str]) -> tuple[int, ...]:
    items = _list(value, key, problems)
    if items is None:
        return ()
    if not items:
        problems.append(f"{key}: at least one ops SSH key id is required (`hcloud ssh-key list`)")
    ids: list[int] = []
    for i, item in enumerate(items):
        number = _integer(item)
        if number is None or number <= 0:
            problems.append(f"{key}[{i}]: {item!r} is not a Hetzner SSH key id (a positive integer)")
        else:
            ids.append(number)
    return tuple(dict.fromkeys(ids))


def _integer(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and re.fullmatch(r"[0-9]{1,19}", v.strip()):
        return int(v)
    return None


def _port(value: Mapping[str, Any], key: str, problems: list[str]) -> int:
    number = _integer(value.get(key))
    if number is None or not 1 <= number <= 65535:
        problems.append(f"{key}: {value.get(key)!r} is not a port number (1-65535)")
        return 0
    return number


def _bool(value: Mapping[str, Any], key: str, problems: list[str]) -> bool:
    v = value.get(key)
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    problems.append(f"{key}: {v!r} is not true or false")
    return True
