"""Lines of a list in, candidate names and counted rejections out. The format is detected per line.

Accepted line forms:
- hosts: `0.0.0.0 a.example b.example`, also `127.0.0.1`, `::1`, `::`; other addresses redirect rather than
  block, so their names are rejected as `non-sink-address` (the boilerplate names are `localhost` first);
- a plain name, optionally `*.`-prefixed;
- adblock `||name^` exactly; every other adblock construct (`@@`, `##`, `/regex/`, `|http`, `$options`,
  paths, a bare `name^`) is `unsupported-adblock`: guessing what a cosmetic or path rule means at the DNS
  layer would over- or under-block;
- RPZ `name [ttl] [IN] CNAME .` (NXDOMAIN policy); other RPZ records and directives are `unsupported-rpz`;
- anything else with several words is `unsupported-syntax`, a single word containing `://` too.
Comments: whole lines starting with `#`, `!` or `;`, `[Adblock ...]` headers, and inline comments that start
with whitespace then `#`, `!` or `;`. A `#` glued to a word is not a comment (`a.example##.ad` is a rule).
Every token that could have been a name counts as one candidate; a rejected whole line counts as one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from norex.blocklist.names import Rejected, is_ip_literal, normalise, split_wildcard

SINKS = frozenset({"0.0.0.0", "127.0.0.1", "::1", "::"})  # noqa: S104 - list syntax, nothing binds here
ADBLOCK_MARKS = ("^", "$", "|", "@", "/", "#")
RR_TYPES = frozenset({"SOA", "NS", "A", "AAAA", "CNAME", "DNAME", "TXT", "MX", "PTR", "SRV"})
RPZ_CLASSES = frozenset({"IN"})


@dataclass
class Scan:
    """What one list contributed: valid names in file order (repeats kept) and why the rest was refused."""

    names: list[str] = field(default_factory=list)
    subtrees: set[str] = field(default_factory=set)  # names written as `*.name` or `||name^`
    rejected: Counter[str] = field(default_factory=Counter)
    lines: int = 0

    @property
    def candidates(self) -> int:
        return len(self.names) + self.rejected.total()


def decode(raw: bytes) -> str:
    """Lists are UTF-8 in practice; bad bytes become U+FFFD, which IDNA then rejects, so nothing is guessed."""
    text = raw.decode("utf-8", errors="replace")
    return text.replace("\ufeff", "") if "\ufeff" in text else text


def scan(text: str) -> Scan:
    """Parse a whole list. Pure: the caller reads the bytes."""
    result = Scan()
    names = result.names
    add = names.append
    rejected = result.rejected
    lines = text.splitlines()
    result.lines = len(lines)
    for line in lines:
        line = line.strip()
        if not line or line[0] in "#!;" or (line[0] == "[" and line[-1] == "]"):
            continue
        if "#" in line or "!" in line or ";" in line:
            line = _strip_inline_comment(line)
            if not line:
                continue
        parts = line.split()
        first = parts[0]
        if len(parts) == 1:
            _single(first, result)
        elif first in SINKS:
            for token in parts[1:]:
                if token.startswith("*."):
                    _accept(token, result, subtree=True)
                    continue
                try:
                    add(normalise(token))
                except Rejected as exc:
                    rejected[exc.reason] += 1
        elif is_ip_literal(first):
            for token in parts[1:]:
                try:
                    normalise(token)
                except Rejected as exc:
                    rejected[exc.reason if exc.reason == "localhost" else "non-sink-address"] += 1
                else:
                    rejected["non-sink-address"] += 1
        else:
            _multi_word(parts, result)
    return result


def _strip_inline_comment(line: str) -> str:
    cut = len(line)
    for mark in "#!;":
        start = 0
        while (i := line.find(mark, start)) > 0:
            if line[i - 1] in " \t":
                cut = min(cut, i)
                break
            start = i + 1
    return line[:cut].rstrip()


def _single(token: str, result: Scan) -> None:
    if token.startswith("||"):
        inner = token[2:-1]
        glob = "*" in split_wildcard(inner)[0]  # `||ad*.example^` is a pattern, not a name
        if token.endswith("^") and not glob and not any(mark in inner for mark in ADBLOCK_MARKS):
            _accept(inner, result, subtree=True)
        else:
            result.rejected["unsupported-adblock"] += 1
        return
    if token[0] in "|@/":
        result.rejected["unsupported-adblock"] += 1
        return
    if "://" in token:
        result.rejected["unsupported-syntax"] += 1
        return
    name, wild = split_wildcard(token)
    try:
        result.names.append(normalise(name))
    except Rejected as exc:
        # A valid name never contains these marks, so classifying only failures keeps the hot path short.
        adblock = any(mark in token for mark in ADBLOCK_MARKS)
        result.rejected["unsupported-adblock" if adblock else exc.reason] += 1
        return
    if wild:
        result.subtrees.add(result.names[-1])


def _accept(token: str, result: Scan, *, subtree: bool) -> None:
    name, wild = split_wildcard(token)
    try:
        name = normalise(name)
    except Rejected as exc:
        result.rejected[exc.reason] += 1
        return
    result.names.append(name)
    if subtree or wild:
        result.subtrees.add(name)


def _multi_word(parts: list[str], result: Scan) -> None:
    """RPZ `name [ttl] [IN] CNAME .` is the only multi-word form that is not a hosts line."""
    rest = [p.upper() for p in parts[1:]]
    while rest and (rest[0].isdigit() or rest[0] in RPZ_CLASSES):
        rest.pop(0)
    if rest == ["CNAME", "."]:
        _accept(parts[0], result, subtree=False)
    elif parts[0][0] in "$@" or parts[0].upper() in RR_TYPES or any(word in RR_TYPES for word in rest):
        result.rejected["unsupported-rpz"] += 1
    else:
        result.rejected["unsupported-syntax"] += 1
