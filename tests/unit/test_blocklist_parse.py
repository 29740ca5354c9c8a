"""Lines to candidate names: every supported format, every refused one, comments, encodings."""

from __future__ import annotations

from pathlib import Path

import pytest

from norex.blocklist.parse import decode, scan

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "blocklists"


def scan_fixture(name: str):
    return scan(decode((FIXTURES / name).read_bytes()))


def one(line: str) -> tuple[list[str], set[str], dict[str, int]]:
    result = scan(line)
    return result.names, result.subtrees, dict(result.rejected)


def test_hosts_fixture():
    result = scan_fixture("hosts.txt")
    assert result.names == [
        "ads.example.com",
        "banner.ads.example.com",
        "tracker.example.net",
        "pixel.example.net",
        "v6sink.example.org",
        "loop6.example.org",
        "leading.example.org",
        "trailing.example.org",
        "under_score.example.com",
    ]
    assert dict(result.rejected) == {
        "localhost": 9,
        "ip-address": 1,
        "non-sink-address": 1,
        "empty-label": 1,
        "invalid-label": 1,
    }
    assert result.lines == 19
    assert result.candidates == 9 + 13


def test_domains_fixture():
    result = scan_fixture("domains.txt")
    assert result.names == ["ads.example.com", "wild.example.org", "xn--bcher-kva.example"]
    assert result.subtrees == {"wild.example.org"}
    assert dict(result.rejected) == {
        "invalid-idn": 1,
        "single-label": 1,
        "ip-address": 2,
        "invalid-tld": 1,
        "unsupported-adblock": 1,
    }


def test_adblock_fixture_accepts_only_the_plain_domain_anchor():
    result = scan_fixture("adblock.txt")
    assert result.names == ["adblock.example.com", "starred.example.com"]
    assert result.subtrees == {"adblock.example.com", "starred.example.com"}
    assert dict(result.rejected) == {"unsupported-adblock": 8}


def test_rpz_fixture():
    result = scan_fixture("rpz.txt")
    assert result.names == ["rpz.example.com", "rpz.example.com", "ttl.example.com"]
    assert result.subtrees == {"rpz.example.com"}
    assert dict(result.rejected) == {"unsupported-rpz": 6}


@pytest.mark.parametrize(
    "line",
    [
        "||ads.example.com^$third-party",
        "||ads.example.com^$important",
        "||ads.example.com^|",
        "||ads.example.com",
        "||ads.example.com/path^",
        "||ads*.example.com^",
        "||ads.example.com^^",
        "@@||ads.example.com^",
        "example.com##.banner",
        "example.com#@#.banner",
        "example.com#?#div:has(.ad)",
        "/ads[0-9]+\\.example/",
        "|http://ads.example.com",
        "|https://ads.example.com/x.js|",
        "ads.example.com^",
        "ads.example.com$script",
        "ads.example.com/banner",
    ],
)
def test_other_adblock_syntax_is_rejected_not_guessed(line):
    assert one(line) == ([], set(), {"unsupported-adblock": 1})


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("http://ads.example.com/path", "unsupported-syntax"),
        ("ads.example.com tracker.example.com", "unsupported-syntax"),
        ("ads.example.com CNAME rpz-passthru.", "unsupported-rpz"),
        ("ads.example.com CNAME *.", "unsupported-rpz"),
        ("ads.example.com A 192.0.2.1", "unsupported-rpz"),
        ("$ORIGIN rpz.example.", "unsupported-rpz"),
        ("@ IN NS localhost.", "unsupported-rpz"),
    ],
)
def test_other_multi_word_lines(line, reason):
    assert one(line) == ([], set(), {reason: 1})


@pytest.mark.parametrize(
    "line",
    [
        "0.0.0.0 ads.example.com",
        "127.0.0.1 ads.example.com",
        "::1 ads.example.com",
        ":: ads.example.com",
        "0.0.0.0\tads.example.com",
        "  0.0.0.0   ads.example.com   ",
        "0.0.0.0 ads.example.com # inline comment",
        "0.0.0.0 ads.example.com\t#tab comment",
        "0.0.0.0 ads.example.com ! bang comment",
        "ads.example.com",
        "ADS.example.com.",
        ".ads.example.com",
        "ads.example.com # comment",
        "||ads.example.com^",
        "ads.example.com CNAME .",
        "ads.example.com 3600 IN CNAME .",
        "ads.example.com IN 3600 CNAME . ; rpz comment",
    ],
)
def test_block_forms(line):
    assert scan(line).names == ["ads.example.com"]


def test_hosts_line_with_several_names():
    assert one("0.0.0.0 a.example.com b.example.com c.example.com") == (
        ["a.example.com", "b.example.com", "c.example.com"],
        set(),
        {},
    )


def test_wildcards_mean_the_subtree():
    assert one("*.ads.example.com") == (["ads.example.com"], {"ads.example.com"}, {})
    assert one("*.ads.example.com CNAME .") == (["ads.example.com"], {"ads.example.com"}, {})
    assert one("0.0.0.0 *.ads.example.com") == (["ads.example.com"], {"ads.example.com"}, {})
    assert one("||*.ads.example.com^") == (["ads.example.com"], {"ads.example.com"}, {})


@pytest.mark.parametrize(
    "line", ["", "   ", "# comment", "! comment", "; comment", "#0.0.0.0 ads.example.com", "[Adblock Plus 2.0]"]
)
def test_comments_and_blank_lines_are_not_candidates(line):
    result = scan(line)
    assert (result.names, result.candidates, result.lines) == ([], 0, 1 if line else 0)


def test_glued_hash_is_not_a_comment():
    assert one("0.0.0.0 ads.example.com#x") == ([], set(), {"invalid-label": 1})


def test_non_sink_hosts_addresses_are_not_blocks():
    assert one("192.0.2.1 ads.example.com other.example.com") == ([], set(), {"non-sink-address": 2})
    assert one("fe00::0 ip6-localnet") == ([], set(), {"localhost": 1})


def test_crlf_bom_and_bad_bytes():
    raw = b"\xef\xbb\xbf0.0.0.0 a.example.com\r\nb.example.com\r\n\xff\xfe.example.com\r\n# end\r\n"
    result = scan(decode(raw))
    assert result.names == ["a.example.com", "b.example.com"]
    assert dict(result.rejected) == {"invalid-idn": 1}
    assert result.lines == 4


def test_bom_in_the_middle_of_concatenated_lists():
    assert scan(decode("a.example.com\n\ufeffb.example.com\n".encode())).names == ["a.example.com", "b.example.com"]


def test_candidates_count_names_and_rejections():
    result = scan("0.0.0.0 a.example.com bad..example.com\n||x.example.com^$popup\n# c\n")
    assert result.candidates == 3
    assert len(result.names) + result.rejected.total() == result.candidates
