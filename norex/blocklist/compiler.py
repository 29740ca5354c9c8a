"""Many scanned lists and an allowlist in, the smallest set of `local-zone` lines that blocks the same names out.

Semantics, in the order they apply:
1. Duplicates: a name keeps the category of the first source given on the command line; later sightings
   are counted as `duplicate`.
2. Allowlist: a plain allowlist name is exempt itself; a `*.name` or `||name^` entry exempts the name and its
   whole subtree. Exempt names are dropped and counted as `allowlisted`.
3. Parent coverage: Unbound's `local-zone` covers the subtree, so a name below another blocked name is
   dropped as `covered-by-parent` - unless an allowlisted name lies in between, because the allowlisted
   name's `transparent` exception would otherwise un-block it.
4. Exceptions: an allowlisted name that sits below a blocked name gets `local-zone: "name." transparent`, so
   Unbound resolves it normally (and, as Unbound zones do, everything below it that is not blocked itself).
Every candidate ends in exactly one bucket: accepted, rejected (by the parser), duplicate, allowlisted or
covered-by-parent. Ancestor walks are O(labels) set lookups; nothing is quadratic.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from norex.blocklist import CATEGORIES
from norex.blocklist.parse import Scan


@dataclass(frozen=True)
class Compiled:
    blocked: dict[str, str]  # name -> category of the first source that listed it
    exceptions: list[str]  # allowlisted names below a blocked name, sorted
    duplicates: int
    allowlisted: int
    covered: int

    def per_category(self) -> dict[str, int]:
        counts = dict.fromkeys(CATEGORIES, 0)
        for category in self.blocked.values():
            counts[category] += 1
        return counts


def ancestors(name: str) -> Iterator[str]:
    """`a.b.example.com` -> `b.example.com`, `example.com`; never the bare TLD (it cannot be blocked)."""
    i = name.find(".")
    while i != -1:
        parent = name[i + 1 :]
        if "." not in parent:
            return
        yield parent
        i = name.find(".", i + 1)


def compile_lists(sources: Sequence[tuple[str, Scan]], allow: Scan | None = None) -> Compiled:
    """Pure: the whole policy of what ends up blocked."""
    first: dict[str, str] = {}
    duplicates = 0
    for category, scanned in sources:
        setdefault = first.setdefault
        before = len(first)
        for name in scanned.names:
            setdefault(name, category)
        duplicates += len(scanned.names) - (len(first) - before)

    allow_subtree = set(allow.subtrees) if allow else set()
    allow_exact = set(allow.names) - allow_subtree if allow else set()
    allowed_any = allow_exact | allow_subtree

    if allowed_any:
        kept = {
            name: cat
            for name, cat in first.items()
            if name not in allowed_any and not (allow_subtree and any(a in allow_subtree for a in ancestors(name)))
        }
    else:
        kept = first
    allowlisted = len(first) - len(kept)

    blocked: dict[str, str] = {}
    for name, category in kept.items():
        if not _covered(name, kept, allow_exact):
            blocked[name] = category
    covered = len(kept) - len(blocked)

    exceptions = sorted(name for name in allowed_any if name not in kept and _under_block(name, kept, allowed_any))
    return Compiled(blocked, exceptions, duplicates, allowlisted, covered)


def _covered(name: str, kept: dict[str, str], allow_exact: set[str]) -> bool:
    """`ancestors()` inlined: this runs once per name, a million times on a big build."""
    i = name.find(".")
    while (j := name.find(".", i + 1)) != -1:
        parent = name[i + 1 :]
        if parent in allow_exact:
            return False
        if parent in kept:
            return True
        i = j
    return False


def _under_block(name: str, kept: dict[str, str], allowed: set[str]) -> bool:
    """Whether the closest enclosing blocked-or-allowed name is blocked (then this name needs an exception)."""
    for parent in ancestors(name):
        if parent in kept:
            return True
        if parent in allowed:
            return False
    return False
