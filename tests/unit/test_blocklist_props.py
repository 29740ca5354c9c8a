"""Property tests: random junk never crashes the compiler, never reaches the output, and every name is accounted for.

The validator here is written independently of `norex.blocklist.names` (a regex per label), so a bug in the
fast path cannot hide behind the same bug in the check.
"""

from __future__ import annotations

import ipaddress
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from norex.blocklist import CATEGORIES
from norex.blocklist.compiler import compile_lists
from norex.blocklist.parse import Scan, decode, scan
from norex.blocklist.render import SourceInfo, render_conf

STRICT_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
STRICT_TLD = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
CONF_LINE = re.compile(r'local-zone: "([^"\s]+)\." (always_nxdomain|transparent)')


def strictly_valid(name: str) -> bool:
    if not name.isascii() or len(name) > 253 or name != name.lower():
        return False
    labels = name.split(".")
    if len(labels) < 2 or not all(STRICT_LABEL.fullmatch(label) for label in labels):
        return False
    if not STRICT_TLD.fullmatch(labels[-1]) or labels[-1].isdigit():
        return False
    if name in ("localhost.localdomain",):
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return True
    return False


LABELS = st.sampled_from(
    ["ads", "ok", "x", "a-b", "_t", "-bad", "bad-", "ü", "☃", "xn--bcher-kva", "xn--zz", "A", "1", "*", "", "a" * 64]
)
TLDS = st.sampled_from(["com", "example", "net", "c_m", "1", "xn--p1ai", ""])
NAMES = st.builds(lambda labels, tld: ".".join([*labels, tld]), st.lists(LABELS, min_size=0, max_size=4), TLDS)
PREFIXES = st.sampled_from(
    ["", "", "0.0.0.0 ", "127.0.0.1 ", "::1 ", ":: ", "192.0.2.1 ", "||", "@@||", "*.", ".", "|", "/", "# ", "! "]
)
SUFFIXES = st.sampled_from(
    ["", "", ".", "^", "^$third-party", " CNAME .", " 300 IN CNAME .", " CNAME rpz-passthru.", " # c", "\r", "##.ad"]
)
STRUCTURED = st.builds(
    lambda p, names, s: p + " ".join(names) + s, PREFIXES, st.lists(NAMES, min_size=1, max_size=3), SUFFIXES
)
JUNK_TEXT = st.text(max_size=80)
JUNK_BYTES = st.binary(max_size=80).map(lambda b: decode(b))
# Valid names from a tiny pool, so that duplicates, parents, children and allowlist hits happen often.
GOOD_NAMES = st.lists(st.sampled_from(["ads", "ok", "x"]), min_size=1, max_size=3).map(
    lambda labels: ".".join([*labels, "example"])
)
GOOD = st.builds(str.format, st.sampled_from(["{}", "0.0.0.0 {}", "||{}^", "*.{}", "{} CNAME .", "{}."]), GOOD_NAMES)
LINES = st.one_of(GOOD, GOOD, GOOD, STRUCTURED, JUNK_TEXT, JUNK_BYTES)
LISTS = st.lists(LINES, max_size=30).map(lambda lines: "\n".join(lines))
ALLOW = st.lists(st.one_of(GOOD_NAMES, GOOD_NAMES, GOOD, STRUCTURED), max_size=6).map(lambda lines: "\n".join(lines))
SOURCES = st.lists(st.tuples(st.sampled_from(CATEGORIES), LISTS), min_size=1, max_size=3)


def closest_zone(name: str, zones: dict[str, str]) -> str | None:
    """What Unbound does: the most specific local-zone at or above the name decides."""
    labels = name.split(".")
    for i in range(len(labels) - 1):
        kind = zones.get(".".join(labels[i:]))
        if kind is not None:
            return kind
    return None


def check(sources: list[tuple[str, str]], allow_text: str) -> None:
    scans: list[tuple[str, Scan]] = [(cat, scan(text)) for cat, text in sources]
    allow = scan(allow_text)
    compiled = compile_lists(scans, allow)

    # Every name that reaches the output is valid by an independent, strict definition.
    assert all(strictly_valid(name) for name in compiled.blocked)
    assert all(strictly_valid(name) for name in compiled.exceptions)

    # Every candidate lands in exactly one bucket.
    candidates = sum(s.candidates for _, s in scans)
    rejected = sum(s.rejected.total() for _, s in scans)
    assert (
        len(compiled.blocked) + rejected + compiled.duplicates + compiled.covered + compiled.allowlisted == candidates
    )

    # The rendered file has only lines Unbound accepts, and says the same as the compiled sets.
    conf = render_conf(compiled, "always_nxdomain", [SourceInfo(c, "x", "f" * 64, 0) for c, _ in scans], None)
    zones: dict[str, str] = {}
    for line in conf.decode("ascii").splitlines():
        if line.startswith("#") or line == "server:":
            continue
        match = CONF_LINE.fullmatch(line)
        assert match, line
        assert strictly_valid(match[1])
        zones[match[1]] = match[2]
    assert len(zones) == len(compiled.blocked) + len(compiled.exceptions)

    # Allowlisted names resolve; everything else that was listed stays blocked.
    allowed_subtrees = allow.subtrees
    allowed_exact = set(allow.names)

    def allowed(name: str) -> bool:
        labels = name.split(".")
        return name in allowed_exact or any(".".join(labels[i:]) in allowed_subtrees for i in range(len(labels)))

    for name in allowed_exact:
        assert closest_zone(name, zones) in (None, "transparent")
    for name in allowed_subtrees:
        assert not any(z == name or z.endswith("." + name) for z, kind in zones.items() if kind != "transparent")
    for _, scanned in scans:
        for name in scanned.names:
            if not allowed(name):
                assert closest_zone(name, zones) == "always_nxdomain"


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(SOURCES, ALLOW)
def test_random_lists_never_crash_and_always_add_up(sources, allow_text):
    check(sources, allow_text)


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(st.tuples(st.sampled_from(CATEGORIES), st.binary(max_size=400)), min_size=1, max_size=3))
def test_random_bytes(sources):
    check([(cat, decode(raw)) for cat, raw in sources], "")


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(st.text(), min_size=1, max_size=3), st.text())
def test_random_text(texts, allow_text):
    check([(CATEGORIES[i % 3], text) for i, text in enumerate(texts)], allow_text)


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(CATEGORIES), st.lists(GOOD, max_size=12).map("\n".join)), min_size=1, max_size=3
    ),
    st.lists(st.one_of(GOOD_NAMES, GOOD), max_size=4).map("\n".join),
)
def test_valid_names_only_exercise_the_allowlist_and_parent_rules(sources, allow_text):
    """No junk, a tiny name pool: nested blocks and allowlist entries meet in almost every example."""
    check(sources, allow_text)
