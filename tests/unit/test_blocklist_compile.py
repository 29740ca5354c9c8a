"""Compiling lists: duplicates, categories, parent coverage, the allowlist and the rendered file."""

from __future__ import annotations

import re

from norex.blocklist.compiler import ancestors, compile_lists
from norex.blocklist.parse import scan
from norex.blocklist.render import SourceInfo, manifest, render_conf

LINE = re.compile(r'local-zone: "([a-z0-9_.-]+)\." (always_nxdomain|always_refuse|always_null|transparent)')


def compile_text(*sources: tuple[str, str], allow: str | None = None):
    return compile_lists([(cat, scan(text)) for cat, text in sources], scan(allow) if allow is not None else None)


def test_ancestors_stop_before_the_tld():
    assert list(ancestors("a.b.example.com")) == ["b.example.com", "example.com"]
    assert list(ancestors("example.com")) == []


def test_duplicates_keep_the_first_category_on_the_command_line():
    c = compile_text(
        ("malware", "x.example.com\ny.example.com\n"),
        ("ads", "y.example.com\nz.example.com\nz.example.com\n"),
    )
    assert c.blocked == {"x.example.com": "malware", "y.example.com": "malware", "z.example.com": "ads"}
    assert c.duplicates == 2
    assert c.per_category() == {"ads": 1, "trackers": 0, "malware": 2}


def test_children_of_a_blocked_name_are_covered():
    c = compile_text(("ads", "a.b.example.com\nb.example.com\nc.a.b.example.com\nexample.org\n"))
    assert set(c.blocked) == {"b.example.com", "example.org"}
    assert c.covered == 2


def test_sibling_and_lookalike_names_are_not_covered():
    c = compile_text(("ads", "ads.example.com\nbads.example.com\nexample.com.evil.example\n"))
    assert len(c.blocked) == 3
    assert c.covered == 0


def test_allowlisted_name_under_a_blocked_parent_gets_a_transparent_exception():
    c = compile_text(("ads", "ads.example.com\n"), allow="ok.ads.example.com\n")
    assert set(c.blocked) == {"ads.example.com"}
    assert c.exceptions == ["ok.ads.example.com"]


def test_allowlisted_name_itself_is_removed():
    c = compile_text(("ads", "ads.example.com\nok.example.com\n"), allow="ok.example.com\n")
    assert set(c.blocked) == {"ads.example.com"}
    assert c.allowlisted == 1
    assert c.exceptions == []  # nothing above it is blocked: no exception needed


def test_blocked_name_below_an_exception_stays_blocked():
    c = compile_text(("ads", "ads.example.com\nbad.ok.ads.example.com\n"), allow="ok.ads.example.com\n")
    assert set(c.blocked) == {"ads.example.com", "bad.ok.ads.example.com"}
    assert c.covered == 0
    assert c.exceptions == ["ok.ads.example.com"]


def test_plain_allow_of_a_parent_does_not_unblock_its_children():
    c = compile_text(("ads", "example.com\nads.example.com\n"), allow="example.com\n")
    assert set(c.blocked) == {"ads.example.com"}
    assert (c.allowlisted, c.covered, c.exceptions) == (1, 0, [])


def test_wildcard_allow_exempts_the_whole_subtree():
    c = compile_text(
        ("ads", "example.com\nads.example.com\nx.ads.example.com\nother.example\n"), allow="*.example.com\n"
    )
    assert set(c.blocked) == {"other.example"}
    assert c.allowlisted == 3


def test_nested_allowlist_entries_need_only_the_outer_exception():
    c = compile_text(("ads", "example.com\n"), allow="a.example.com\nb.a.example.com\n")
    assert c.exceptions == ["a.example.com"]


def test_accounting_adds_up():
    sources = [
        ("ads", "0.0.0.0 a.example.com b.a.example.com localhost\n||x.example.com^$popup\nok.example.com\n"),
        ("trackers", "a.example.com\nt.example.net\n"),
    ]
    allow = "ok.example.com\n"
    scans = [(cat, scan(text)) for cat, text in sources]
    c = compile_lists(scans, scan(allow))
    candidates = sum(s.candidates for _, s in scans)
    rejected = sum(s.rejected.total() for _, s in scans)
    assert candidates == 7
    assert len(c.blocked) + rejected + c.duplicates + c.covered + c.allowlisted == candidates


def render(text: str, zone_type: str = "always_nxdomain", allow: str | None = None) -> str:
    c = compile_text(("ads", text), allow=allow)
    return render_conf(c, zone_type, [SourceInfo("ads", "list.txt", "f" * 64, len(text))], None).decode()


def test_render_is_sorted_valid_and_has_no_timestamp():
    out = render("z.example.com\na.example.com\nm.example.com\n", allow="ok.a.example.com\n")
    lines = out.splitlines()
    body = [line for line in lines if line.startswith("local-zone:")]
    assert body == [
        'local-zone: "a.example.com." always_nxdomain',
        'local-zone: "m.example.com." always_nxdomain',
        'local-zone: "z.example.com." always_nxdomain',
        'local-zone: "ok.a.example.com." transparent',
    ]
    for line in lines:
        assert line.startswith("#") or line == "server:" or LINE.fullmatch(line), line
    assert "server:" in lines
    assert not re.search(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}", out)


def test_zone_type_is_used():
    assert 'local-zone: "a.example.com." always_refuse' in render("a.example.com\n", "always_refuse")
    assert 'local-zone: "a.example.com." always_null' in render("a.example.com\n", "always_null")


def test_same_input_same_bytes():
    assert render("b.example.com\na.example.com\n") == render("b.example.com\na.example.com\n")


def test_manifest_names_no_domain():
    text = "secret-name.example.com\n||bad.example.com^$popup\n"
    scanned = scan(text)
    info = SourceInfo("ads", "list.txt", "0" * 64, len(text))
    c = compile_lists([("ads", scanned)])
    conf = render_conf(c, "always_nxdomain", [info], None)
    m = manifest(c, "always_nxdomain", [(info, scanned)], None, conf)
    assert "example.com" not in repr(m)
    assert m["total"] == 1
    assert m["rejected"] == {"unsupported-adblock": 1}
