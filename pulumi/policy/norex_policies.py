"""CrossGuard policies for NorexVPN customer stacks, written as plain validation functions.

Each function has CrossGuard's `validate(args, report_violation)` signature: `args.resource_type` and
`args.props` (the resource's inputs, camelCase as the engine sends them). Tests call them directly with
fake args; `policies()` wraps them for the policy pack (`__main__.py`). Self-contained: the CLI runs a
pack with only this folder on the path, so nothing here imports the Pulumi program.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

SERVER = "hcloud:index/server:Server"
FIREWALL = "hcloud:index/firewall:Firewall"
FIREWALL_ATTACHMENT = "hcloud:index/firewallAttachment:FirewallAttachment"
SNAPSHOT = "hcloud:index/snapshot:Snapshot"

LABEL_KEYS = {"norex-customer", "managed-by"}
CUSTOMER_ID = re.compile(r"^c-[0-9a-f]{8,32}$")
# A source range at least this wide counts as the whole internet (same rule as the program's config).
WORLD_PREFIX = {4: 8, 6: 16}

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
STRIPE_ID = re.compile(
    r"\b(?:cus|sub|si|pi|pm|in|ch|cs|evt|seti|acct|card|src|txn|prod|price|ii|il|re|po|py|tok)_[A-Za-z0-9]{8,}\b"
)
SECRET_PATTERNS = {
    "a private key block": re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"),
    "a WireGuard private or preshared key": re.compile(r"(?i)\b(?:private|preshared)_?key\s*[=:]"),
    "a WireGuard-style key": re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=(?![A-Za-z0-9+/=])"),
    "a Stripe secret": re.compile(r"\b(?:(?:sk|rk)_(?:live|test)|whsec)_[A-Za-z0-9]{8,}"),
    "an API token": re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{64}(?![A-Za-z0-9])"),
    "a password setting": re.compile(r"(?im)^\s*-?\s*(?:password|passwd|hashed_passwd|plain_text_passwd|chpasswd)\s*:"),
    "cloud-init host keys": re.compile(r"(?im)^\s*ssh_keys\s*:"),
    "a credential assignment": re.compile(r"(?i)\b(?:api[_-]?key|token|secret)\s*[=:]\s*\S"),
}

Report = Callable[..., None]


def find_secrets(text: str) -> list[str]:
    """What in `text` looks like a secret (descriptions only: the matches themselves are never echoed)."""
    return [what for what, pattern in SECRET_PATTERNS.items() if pattern.search(text)]


def find_personal_data(text: str) -> list[str]:
    found = []
    if EMAIL.search(text):
        found.append("an email address")
    if STRIPE_ID.search(text):
        found.append("a Stripe id")
    return found


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key in value:
            yield from _strings(value[key], f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")


def _is_world(cidr: str) -> bool:
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return True  # not a range we can vouch for
    return net.prefixlen < WORLD_PREFIX[net.version]


def _covers(port: Any, number: int) -> bool:
    text = str(port or "any").strip()
    if text == "any":
        return True
    low, _, high = text.partition("-")
    try:
        return int(low) <= number <= int(high or low)
    except ValueError:
        return True


def no_backups(args: Any, report_violation: Report) -> None:
    """No copy of a customer's disk at the provider: backups off, no snapshots in a customer stack."""
    if args.resource_type == SERVER and args.props.get("backups") is not False:
        report_violation("Hetzner backups must be off (backups: false): no copy of a customer's disk may exist")
    if args.resource_type == SNAPSHOT:
        report_violation("no snapshot in a customer stack: no copy of a customer's disk may exist at the provider")


def no_open_ssh(args: Any, report_violation: Report) -> None:
    """SSH and every other TCP port (the agent) only from ops / control-plane ranges, never the internet."""
    if args.resource_type != FIREWALL:
        return
    for i, rule in enumerate(args.props.get("rules") or []):
        if rule.get("direction", "in") != "in" or rule.get("protocol") != "tcp":
            continue
        wide = [source for source in rule.get("sourceIps") or [] if _is_world(source)]
        if wide:
            what = "SSH (port 22)" if _covers(rule.get("port"), 22) else f"TCP port {rule.get('port')}"
            report_violation(
                f"rules[{i}]: {what} is open to {', '.join(wide)}; SSH and the agent are reachable only from "
                "the ops and control-plane CIDRs"
            )


def labels_without_personal_data(args: Any, report_violation: Report) -> None:
    """Labels hold only the opaque customer id and managed-by; no input anywhere holds an email or a Stripe id."""
    if not args.resource_type.startswith("hcloud:"):
        return
    labels = args.props.get("labels")
    if args.resource_type in (SERVER, FIREWALL) or labels:
        labels = labels or {}
        if set(labels) != LABEL_KEYS:
            extra = sorted(set(labels) - LABEL_KEYS)
            missing = sorted(LABEL_KEYS - set(labels))
            report_violation(f"labels must be exactly {sorted(LABEL_KEYS)} (extra: {extra}, missing: {missing})")
        if "managed-by" in labels and labels["managed-by"] != "norex":
            report_violation("label managed-by must be 'norex'")
        customer = labels.get("norex-customer")
        if customer is not None and not (isinstance(customer, str) and CUSTOMER_ID.match(customer)):
            report_violation("label norex-customer is not an opaque customer id (c- and 8-32 lowercase hex digits)")
    for path, text in _strings(dict(args.props)):
        for what in find_personal_data(text):
            report_violation(f"{path} contains {what}: personal data must never reach the provider")


def firewall_at_creation(args: Any, report_violation: Report) -> None:
    """The firewall is attached when the server is created; a later attachment leaves the first boot open."""
    if args.resource_type == SERVER and not args.props.get("firewallIds"):
        report_violation("the server has no firewall_ids: attach its firewall at creation")
    if args.resource_type == FIREWALL_ATTACHMENT:
        report_violation("no FirewallAttachment: set the server's firewall_ids so the firewall is there at creation")


def user_data_without_secrets(args: Any, report_violation: Report) -> None:
    """User data is served by the metadata service for the server's life: a generic cloud-config, no secret."""
    if args.resource_type != SERVER:
        return
    user_data = args.props.get("userData")
    if not user_data:
        return
    if not user_data.startswith("#cloud-config\n"):
        report_violation("user data must be a #cloud-config document")
    for what in find_secrets(user_data):
        report_violation(f"user data contains {what}: secrets are generated on the server by the roles")
    customer = (args.props.get("labels") or {}).get("norex-customer")
    if customer and customer in user_data:
        report_violation("user data contains the customer id: it must be the same document for every customer")


VALIDATIONS: dict[str, tuple[Callable[[Any, Report], None], str]] = {
    "no-backups": (no_backups, "Backups off and no snapshots: no copy of a customer's disk at the provider."),
    "no-open-ssh": (no_open_ssh, "SSH and the agent (any TCP) only from ops / control-plane CIDRs."),
    "labels-without-personal-data": (
        labels_without_personal_data,
        "Labels are exactly norex-customer (opaque id) and managed-by; no email or Stripe id in any input.",
    ),
    "firewall-at-creation": (firewall_at_creation, "The server's firewall is attached at creation."),
    "user-data-without-secrets": (user_data_without_secrets, "User data is a generic cloud-config with no secret."),
}


def policies() -> list[Any]:
    """The validations as CrossGuard ResourceValidationPolicy objects (mandatory)."""
    from pulumi_policy import EnforcementLevel, ResourceValidationPolicy

    return [
        ResourceValidationPolicy(
            name=name, description=description, validate=validate, enforcement_level=EnforcementLevel.MANDATORY
        )
        for name, (validate, description) in VALIDATIONS.items()
    ]
