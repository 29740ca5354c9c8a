"""DNS input checks for norex.vpn.resolver: trust anchors, root hints, zone names.

Like the network filters, each *_errors filter returns one-line messages (empty
when the input is good), so the role's validate entry point reports every
problem on the controller before Unbound on any server sees the input.
"""

from __future__ import annotations

import re

from ansible_collections.norex.vpn.plugins.plugin_utils.inputs import is_str as _is_str
from ansible_collections.norex.vpn.plugins.plugin_utils.inputs import not_a_list

# A root DS record as `dig DS .` or the IANA root-anchors file gives it:
# owner ".", optional TTL, class IN, key tag, algorithm, digest type, digest.
DS_RE = re.compile(
    r"^\.\s+(?:\d{1,10}\s+)?IN\s+DS\s+(?P<tag>\d{1,5})\s+(?P<alg>\d{1,3})\s+(?P<dtype>\d{1,3})\s+(?P<digest>[0-9A-Fa-f]+)$"
)
DIGEST_HEX = {1: 40, 2: 64, 4: 96}  # SHA-1, SHA-256, SHA-384
LABEL_RE = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
HINT_RE = re.compile(r"^(?P<owner>\S+)\s+(?:\d+\s+)?(?:IN\s+)?(?P<type>NS|A|AAAA)\s+(?P<data>\S+)$", re.IGNORECASE)


def trust_anchor_errors(values, name: str) -> list[str]:
    """Problems with a list of root DS lines: not a list, empty, malformed, a digest of the wrong length."""
    if errors := not_a_list(values, name, "root DS lines"):
        return errors
    if not values:
        return [f"{name} is empty: without a trust anchor DNSSEC cannot be validated"]
    errors = []
    for index, value in enumerate(values):
        match = DS_RE.match(value.strip()) if _is_str(value) else None
        if not match:
            errors.append(f"{name}[{index}]: not a root DS record (expected '. IN DS TAG ALG DIGESTTYPE HEX')")
            continue
        dtype, tag = int(match["dtype"]), int(match["tag"])
        if tag > 65535:
            errors.append(f"{name}[{index}]: key tag {tag} is out of range")
        if dtype in DIGEST_HEX and len(match["digest"]) != DIGEST_HEX[dtype]:
            errors.append(f"{name}[{index}]: a type {dtype} digest has {DIGEST_HEX[dtype]} hex digits")
        elif dtype not in DIGEST_HEX:
            errors.append(f"{name}[{index}]: unknown digest type {dtype}")
    return errors


def root_hints_errors(value, name: str) -> list[str]:
    """Problems with root hints text: every record line must be NS/A/AAAA, with at least one NS for '.'."""
    if value is None or value == "":
        return []
    if not _is_str(value):
        return [f"{name} must be the text of a root hints file, not {type(value).__name__}"]
    errors = []
    root_ns = 0
    addresses = 0
    for number, raw in enumerate(value.splitlines(), start=1):
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        match = HINT_RE.match(line)
        if not match:
            errors.append(f"{name} line {number}: not an NS, A or AAAA record")
            continue
        kind = match["type"].upper()
        root_ns += kind == "NS" and match["owner"] == "."
        addresses += kind in ("A", "AAAA")
    if not errors and (root_ns == 0 or addresses == 0):
        errors.append(f"{name} needs at least one NS record for '.' and one address for it")
    return errors


def zone_name_errors(values, name: str) -> list[str]:
    """Problems with a list of absolute zone names (ending in a dot, such as test.)."""
    if errors := not_a_list(values, name, "zone names"):
        return errors
    for index, value in enumerate(values):
        text = value.strip().lower() if _is_str(value) else ""
        labels = text[:-1].split(".") if text.endswith(".") and text != "." else []
        if not labels or len(text) > 254 or not all(LABEL_RE.match(label) for label in labels):
            errors.append(f"{name}[{index}]: {value!r} is not a zone name ending in a dot (such as test.)")
    return errors


class FilterModule:
    """DNS input filters for norex.vpn."""

    def filters(self):
        return {
            "trust_anchor_errors": trust_anchor_errors,
            "root_hints_errors": root_hints_errors,
            "zone_name_errors": zone_name_errors,
        }
