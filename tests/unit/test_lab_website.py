"""The lab web site's /lists/KEY: the synthetic copies of the default blocklist sources, with an ETag and a 304 for
a matching If-None-Match, and nothing else of the disk."""

from __future__ import annotations

import httpx

from norex.blocklist.sources import DEFAULTS
from norex.lab.website import LISTS, Handler
from tests.unit.http_support import serving


def test_the_lists_are_served_with_an_etag_and_nothing_else_is():
    with serving(Handler) as base:
        for source in DEFAULTS:
            first = httpx.get(f"{base}/lists/{source.key}")
            assert first.status_code == 200 and first.content == (LISTS / source.key).read_bytes()
            again = httpx.get(f"{base}/lists/{source.key}", headers={"If-None-Match": first.headers["etag"]})
            assert again.status_code == 304 and again.content == b""
        for path in ("/lists/README.md", "/lists/../website.py", "/lists/nothing", "/lists/%2e%2e%2fnetwork.py"):
            assert httpx.get(f"{base}{path}").status_code == 404, path
        assert httpx.get(f"{base}/ip").text.strip() == "127.0.0.1"
