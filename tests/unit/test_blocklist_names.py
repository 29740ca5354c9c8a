"""One token to one name: normalisation and every rejection reason."""

from __future__ import annotations

import pytest

from norex.blocklist.names import Rejected, is_ip_literal, normalise, split_wildcard


@pytest.mark.parametrize(
    ("token", "name"),
    [
        ("ads.example.com", "ads.example.com"),
        ("ADS.Example.COM", "ads.example.com"),
        (".leading.example.com", "leading.example.com"),
        ("trailing.example.com.", "trailing.example.com"),
        ("under_score.example.com", "under_score.example.com"),
        ("_dmarc.example.com", "_dmarc.example.com"),
        ("a-b.c-d.example", "a-b.c-d.example"),
        ("r1---sn-abc.example.com", "r1---sn-abc.example.com"),
        ("1.2.3.example", "1.2.3.example"),
        ("Bücher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        (
            "\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25\u3002com",
            "example.com",
        ),  # UTS46: full-width EXAMPLE, ideographic full stop
        ("faß.de", "xn--fa-hia.de"),  # non-transitional: ß is kept, not mapped to ss
        ("пример.xn--p1ai", "xn--e1afmkfd.xn--p1ai"),
        ("a." * 126 + "b", "a." * 126 + "b"),  # 253 characters
        ("x" * 63 + ".example", "x" * 63 + ".example"),
    ],
)
def test_accepted(token, name):
    assert normalise(token) == name


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("localhost", "localhost"),
        ("LOCALHOST", "localhost"),
        ("localhost.localdomain", "localhost"),
        ("local", "localhost"),
        ("broadcasthost", "localhost"),
        ("ip6-localhost", "localhost"),
        ("ip6-allnodes", "localhost"),
        ("example", "single-label"),
        ("com.", "single-label"),
        ("", "empty-label"),
        (".", "empty-label"),
        ("a..example.com", "empty-label"),
        ("..example.com", "empty-label"),
        ("example.com..", "empty-label"),
        ("1.2.3.4", "ip-address"),
        ("0.0.0.0", "ip-address"),
        ("::1", "ip-address"),
        ("2001:db8::1", "ip-address"),
        ("fe80::1%lo0", "ip-address"),
        ("1.2.3", "invalid-tld"),
        ("999.1.1.1", "invalid-tld"),
        ("example.c_m", "invalid-tld"),
        ("a:b.example", "invalid-label"),
        ("-lead.example.com", "invalid-label"),
        ("trail-.example.com", "invalid-label"),
        ("example.-com", "invalid-label"),
        ("example.com-", "invalid-label"),
        ("sp ace.example.com", "invalid-label"),
        ("star*.example.com", "invalid-label"),
        ("*.example.com", "invalid-label"),  # the wildcard is split off by the parser, never here
        ('quote".example.com', "invalid-label"),
        ("back\\slash.example.com", "invalid-label"),
        ("nul\x00.example.com", "invalid-label"),
        ("-.-", "invalid-label"),
        ("x" * 64 + ".example", "label-too-long"),
        ("a." * 126 + "bc", "too-long"),  # 254 characters
        ("☃.example", "invalid-idn"),
        ("\ufffd.example", "invalid-idn"),
        ("xn--zz.example", "invalid-idn"),
        ("xn--a.example", "invalid-idn"),
        ("ü" * 70 + ".example", "invalid-idn"),
    ],
)
def test_rejected(token, reason):
    with pytest.raises(Rejected) as err:
        normalise(token)
    assert err.value.reason == reason


def test_split_wildcard():
    assert split_wildcard("*.example.com") == ("example.com", True)
    assert split_wildcard("example.com") == ("example.com", False)
    assert split_wildcard("*example.com") == ("*example.com", False)


@pytest.mark.parametrize(
    ("token", "is_ip"),
    [("0.0.0.0", True), ("::", True), ("fe80::1%lo0", True), ("ads.example.com", False), ("1.example", False)],
)
def test_is_ip_literal(token, is_ip):
    assert is_ip_literal(token) is is_ip
