"""The default sources and their licences: every default is recorded with its licence and where it was read; a build
from them (synthetic copies in each list's layout, norex/lab/data/lists) carries every notice in the
include file's header and on the sources page; other known sources need an accepted licence, refused ones never run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from norex.blocklist import CATEGORIES
from norex.blocklist.build import build
from norex.blocklist.page import sources_page
from norex.blocklist.sources import ACCEPT_FIRST, DEFAULTS, KNOWN, LICENCE_URLS, MIT_NOTICE, NOT_FOR_COMMERCIAL_USE
from norex.errors import UsageError
from tests.unit.test_blocklist_cli import run, zones

COPIES = Path(__file__).resolve().parents[2] / "norex" / "lab" / "data" / "lists"
MIRROR = COPIES.as_uri()


def test_every_default_says_its_licence_where_it_was_read_and_covers_every_category():
    assert len(KNOWN) == len(DEFAULTS) + len(ACCEPT_FIRST) + 2 + len(NOT_FOR_COMMERCIAL_USE)  # keys are unique
    for source in DEFAULTS:
        assert source.spdx in LICENCE_URLS and source.copyright and source.licence_read_at and source.homepage
        assert source.url.startswith("https://") and source.category in CATEGORIES
        assert (COPIES / source.key).is_file(), f"no synthetic copy of {source.key}"
    assert {s.category for s in DEFAULTS} == set(CATEGORIES)
    urlhaus = KNOWN["urlhaus"]
    assert "Spamhaus" in urlhaus.doubt and "--without urlhaus" in urlhaus.doubt  # recorded, and one switch away


def test_a_build_from_the_defaults_carries_every_notice(tmp_path):
    result = build([], tmp_path, defaults=True, mirror=MIRROR)
    conf = (tmp_path / "blocklist.conf").read_text()
    header = conf.split("server:", 1)[0]
    for source in DEFAULTS:
        assert f"# {source.key}: {source.title}, {source.homepage}" in header
        assert source.copyright in header
    assert header.count("Permission is hereby granted") == 1 and "CC-BY-3.0 (https://creativecommons.org" in header
    assert header.count("modified: converted to Unbound local-zones") == len(DEFAULTS)
    assert all(line.startswith("#") for line in header.splitlines())
    blocked = zones(tmp_path / "blocklist.conf")
    for name in ("banner.adaway-ads.test", "coin.stevenblack-ads.test", "shop.cname-ads.test",
                 "smetrics.cname-trackers.test", "telemetry.smarttv-trackers.test", "events.android-trackers.test",
                 "watson.spy-trackers.test", "drop.urlhaus-malware.test"):  # fmt: skip
        assert f"{name}." in blocked, name
    assert "localhost." not in blocked and "disabled.smarttv-trackers.test." not in blocked
    assert all(result["categories"][c] > 0 for c in CATEGORIES) and result["categories_without_source"] == []
    entry = next(s for s in result["sources"] if s["key"] == "urlhaus")
    assert entry["licence"] == "CC0-1.0" and "Spamhaus" in entry["doubt"] and entry["location"] == f"{MIRROR}/urlhaus"


def test_without_urlhaus_the_build_says_malware_is_not_covered(monkeypatch, capsys, tmp_path):
    code, out, err = run(
        monkeypatch, capsys, "blocklist", "build", "--defaults", "--without", "urlhaus", "--mirror", MIRROR,
        "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert code == 0, err
    assert "norex: warning: no source of this build gives malware names" in err
    assert json.loads(out)["categories_without_source"] == ["malware"]
    assert "urlhaus" not in (tmp_path / "blocklist.conf").read_text()


def test_a_source_outside_the_defaults_needs_its_licence_accepted_and_a_refused_one_never_runs(tmp_path):
    own = tmp_path / "aggregate.txt"
    own.write_text("big.aggregate.test\n")
    with pytest.raises(UsageError, match="add --accept-licence hagezi-pro"):
        build([f"hagezi-pro={own}"], tmp_path / "a")
    result = build([f"hagezi-pro={own}"], tmp_path / "b", accept=["hagezi-pro"])
    assert result["licences_accepted"] == ["hagezi-pro"] and result["sources"][0]["accepted"] is True
    assert "accepted by the operator" in (tmp_path / "b" / "blocklist.conf").read_text()
    with pytest.raises(UsageError, match="not licensed for a paid service"):
        build([f"phishing-army={own}"], tmp_path / "c", accept=["phishing-army"])
    for bad in (["--accept-licence", "adaway"], ["--accept-licence", "nothing-known"]):
        with pytest.raises(UsageError, match="not a source whose licence needs accepting"):
            build([f"ads={own}"], tmp_path / "d", accept=[bad[1]])
    with pytest.raises(UsageError, match="--without nothing: not a default source"):
        build([], tmp_path / "e", defaults=True, without=["nothing"], mirror=MIRROR)
    assert not any((tmp_path / d).exists() for d in ("a", "c", "d", "e"))
    # The operator's own lists need no acceptance and are recorded as theirs.
    assert build([f"ads={own}"], tmp_path / "f")["sources"][0]["licence"] == "the operator's own list"


def test_the_sources_page_names_title_author_link_licence_and_the_modification(monkeypatch, capsys, tmp_path):
    own = tmp_path / "own.txt"
    own.write_text("ours.example.test\n")
    build([f"ads={own}"], tmp_path / "out", defaults=True, mirror=MIRROR)
    code, page, err = run(
        monkeypatch, capsys, "blocklist", "sources", "--manifest", str(tmp_path / "out" / "manifest.json")
    )
    assert code == 0, err
    assert page.startswith("# Blocklist sources and licences\n") and "We modified every list" in page
    for source in DEFAULTS:
        assert f"| {source.title} | {source.category} | {source.copyright} | <{source.homepage}> |" in page
    assert "[CC-BY-3.0](https://creativecommons.org/licenses/by/3.0/)" in page and MIT_NOTICE in page
    assert "| 1 list of our own | ads |" in page and "Open questions about terms" in page
    assert sources_page({"sources": []}).count("|") == 12  # the table's head only
    code, _, err = run(monkeypatch, capsys, "blocklist", "sources", "--manifest", str(own))
    assert code != 0 and err.count("\n") == 1 and "not a build's manifest" in err
    code, listing, _ = run(monkeypatch, capsys, "blocklist", "sources")
    assert code == 0 and "urlhaus" in listing and "refused" in listing and "(terms in doubt)" in listing
