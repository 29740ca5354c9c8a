"""One candidate token in, one normalised domain name out (or a rejection reason).

The rules, chosen so that no accepted name can make Unbound reject the file and no name is guessed:
- A leading `*.` means "this name and everything below it"; so does a plain name, because Unbound's
  `local-zone` always covers the subtree. The flag only matters for allowlists.
- One leading dot and one final dot are dropped (`.example.com`, `example.com.`).
- Lower case; non-ASCII names go through UTS46 mapping (non-transitional) and IDNA2008 via the `idna` package;
  whatever it refuses is `invalid-idn`. ASCII `xn--` labels must decode under the same rules.
- At most 253 characters (`too-long`), at least two labels (`single-label`), no empty label (`empty-label`),
  labels of 1..63 characters (`label-too-long`), only `a-z 0-9 - _` (`_` occurs in real lists), no label that
  starts or ends with `-` (RFC 1123; `invalid-label`).
- The last label (the TLD) must look like one: no `_`, not all digits (`invalid-tld`); a dotted quad or an
  IPv6 literal is `ip-address`.
- `localhost`, `localhost.localdomain`, `local`, `broadcasthost` and `ip6-*` (the boilerplate at the top of
  hosts files) are `localhost`.
ASCII names take a fast path of str methods: the compiler must handle a million names in a few seconds.
"""

from __future__ import annotations

import functools
import ipaddress

import idna

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "local", "broadcasthost"})
MAX_NAME = 253
MAX_LABEL = 63


class Rejected(ValueError):
    """A token that is not a usable domain name; `reason` is the counter it goes to."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def split_wildcard(token: str) -> tuple[str, bool]:
    """`*.example.com` -> (`example.com`, True): the name and whether it was written as a subtree."""
    if token.startswith("*."):
        return token[2:], True
    return token, False


def normalise(token: str) -> str:
    """The canonical ASCII form of a domain name, or `Rejected` saying why there is none."""
    name = token.lower() if token.isascii() else _to_ascii(token)
    if name.startswith("."):
        name = name[1:]
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise Rejected("empty-label")
    if name in LOCAL_NAMES or (name.startswith("ip6-") and "." not in name):
        raise Rejected("localhost")
    if ":" in name:
        raise Rejected("ip-address" if _is_ip(name) else "invalid-label")
    if len(name) > MAX_NAME:
        raise Rejected("too-long")
    if "." not in name:
        raise Rejected("single-label")
    if name[0] == "." or name[-1] == "." or ".." in name:
        raise Rejected("empty-label")
    # ASCII only by now, so isalnum() means [a-z0-9]; an all-punctuation name leaves "" which is not alnum.
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise Rejected("invalid-label")
    tld = name[name.rfind(".") + 1 :]
    if tld.isdigit():
        raise Rejected("ip-address" if _is_ip(name) else "invalid-tld")
    if len(name) > MAX_LABEL and max(map(len, name.split("."))) > MAX_LABEL:
        raise Rejected("label-too-long")
    if name[0] == "-" or name[-1] == "-" or ".-" in name or "-." in name:
        raise Rejected("invalid-label")
    if "_" in tld:
        raise Rejected("invalid-tld")
    if "xn--" in name:
        _check_alabels(name)
    return name


def _to_ascii(token: str) -> str:
    """UTS46-map a non-ASCII name and punycode its non-ASCII labels; ASCII labels are left to the ASCII rules."""
    try:
        mapped = idna.uts46_remap(token, std3_rules=False, transitional=False)
        return ".".join(label if label.isascii() else idna.alabel(label).decode("ascii") for label in mapped.split("."))
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        raise Rejected("invalid-idn") from exc


def _check_alabels(name: str) -> None:
    for label in name.split("."):
        if label.startswith("xn--") and not _alabel_ok(label):
            raise Rejected("invalid-idn")


@functools.lru_cache(maxsize=4096)
def _alabel_ok(label: str) -> bool:
    """Cached: IDN TLDs such as `xn--p1ai` repeat on every name under them."""
    try:
        idna.ulabel(label)
    except (idna.IDNAError, UnicodeError, ValueError):
        return False
    return True


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_ip_literal(token: str) -> bool:
    """Whether a hosts-file first column is an address (with or without an IPv6 zone such as `%lo0`)."""
    if ":" not in token and not token[:1].isdigit():
        return False
    return _is_ip(token)
