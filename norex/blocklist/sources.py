"""The sources we know, and their licences. The repository ships no list data: the control plane fetches at build.

NorexVPN is a paid service, so a default source must allow commercial use under terms the build itself can
honour: attribution and the licence notice, which `render` writes into the include file's header and
`page` into the "Blocklist sources and licences" page. Each entry records where its licence was read; check
it again before changing an entry (terms of public lists do change, as abuse.ch's did).

- DEFAULTS: ads, trackers and malware, each from lists under MIT, CC BY 3.0 or (URLhaus) CC0 with a recorded
  doubt; none of them is an aggregate of other people's lists.
- ACCEPT_FIRST: large lists that aggregate upstreams with non-commercial or unreadable terms: usable only with
  `--accept-licence KEY`, which the manifest records.
- NOT_FOR_COMMERCIAL_USE: known by name so that nobody enables them by accident; the build refuses them.
"""

from __future__ import annotations

from dataclasses import dataclass

MODIFIED = "converted to Unbound local-zones, deduplicated, names below a blocked name and allowlisted names dropped"

MIT_NOTICE = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated "
    'documentation files (the "Software"), to deal in the Software without restriction, including without '
    "limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the "
    "Software, and to permit persons to whom the Software is furnished to do so, subject to the following "
    "conditions: The above copyright notice and this permission notice shall be included in all copies or "
    'substantial portions of the Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, '
    "EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR "
    "PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, "
    "DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN "
    "CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE."
)

LICENCE_URLS = {
    "MIT": "https://opensource.org/license/mit",
    "CC-BY-3.0": "https://creativecommons.org/licenses/by/3.0/",
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
}

OBLIGATIONS = {
    "MIT": "the copyright notice and the MIT permission notice in every copy",
    "CC-BY-3.0": "credit the authors and the title, give the source and the licence's address, say it was modified",
    "CC0-1.0": "none (a courtesy credit is given)",
}


@dataclass(frozen=True)
class Source:
    key: str  # what the command line names it by
    title: str
    category: str
    url: str  # where it is fetched from (its home)
    homepage: str
    spdx: str  # SPDX licence id; "LicenseRef-unclear" where the terms cannot be read as one
    copyright: str  # the copyright or attribution line, as the source states it
    licence_read_at: str  # where the licence above was read
    doubt: str = ""  # a recorded uncertainty about the terms, shown in the manifest and the page
    note: str = ""

    @property
    def obligations(self) -> str:
        return OBLIGATIONS.get(self.spdx, "unknown: accepted by the operator (see the manifest)")


def _github(repo: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/master/{path}"


DEFAULTS: tuple[Source, ...] = (
    Source(
        key="adaway",
        title="AdAway default blocklist",
        category="ads",
        url=_github("AdAway/adaway.github.io", "hosts.txt"),
        homepage="https://github.com/AdAway/adaway.github.io/",
        spdx="CC-BY-3.0",
        copyright="Contributions by Kicelo, Dominik Schuermann; further contributors in the project's commit history",
        licence_read_at="the header of hosts.txt (AdAway/adaway.github.io, commit 7b5368f0, 2023-04-29)",
        doubt="the repository's LICENSE.md puts the website's content under GPL-3.0-or-later; only the list's own "
        "header says CC BY 3.0",
        note="mobile ad and analytics providers; small, rarely updated",
    ),
    Source(
        key="stevenblack-base",
        title="Hosts contributed by Steven Black",
        category="ads",
        url=_github("StevenBlack/hosts", "data/StevenBlack/hosts"),
        homepage="https://github.com/StevenBlack/hosts",
        spdx="MIT",
        copyright="Copyright © 2023 Steven Black",
        licence_read_at='license.txt and data/StevenBlack/update.json ("license": "MIT") of StevenBlack/hosts',
        note="the base list only: the unified hosts file aggregates lists under other, some non-commercial, terms",
    ),
    Source(
        key="adguard-disguised-ads",
        title="AdGuard CNAME disguised ads list",
        category="ads",
        url=_github("AdguardTeam/cname-trackers", "data/combined_disguised_ads_justdomains.txt"),
        homepage="https://github.com/AdguardTeam/cname-trackers",
        spdx="MIT",
        copyright="Copyright 2021 Adguard Software Ltd",
        licence_read_at="LICENSE of AdguardTeam/cname-trackers",
        note="plain names; its wildcard and malformed entries are rejected and counted",
    ),
    Source(
        key="adguard-disguised-trackers",
        title="AdGuard CNAME disguised trackers list",
        category="trackers",
        url=_github("AdguardTeam/cname-trackers", "data/combined_disguised_trackers_justdomains.txt"),
        homepage="https://github.com/AdguardTeam/cname-trackers",
        spdx="MIT",
        copyright="Copyright 2021 Adguard Software Ltd",
        licence_read_at="LICENSE of AdguardTeam/cname-trackers",
    ),
    Source(
        key="perflyst-smarttv",
        title="Smart-TV Blocklist for Pi-hole (Perflyst)",
        category="trackers",
        url=_github("Perflyst/PiHoleBlocklist", "SmartTV.txt"),
        homepage="https://github.com/Perflyst/PiHoleBlocklist",
        spdx="MIT",
        copyright="Copyright (c) 2018 Perflyst",
        licence_read_at="LICENSE of Perflyst/PiHoleBlocklist (commit 5974014d, 2025-11-17)",
    ),
    Source(
        key="perflyst-android",
        title="Android tracking list (Perflyst)",
        category="trackers",
        url=_github("Perflyst/PiHoleBlocklist", "android-tracking.txt"),
        homepage="https://github.com/Perflyst/PiHoleBlocklist",
        spdx="MIT",
        copyright="Copyright (c) 2018 Perflyst",
        licence_read_at="LICENSE of Perflyst/PiHoleBlocklist (commit 5974014d, 2025-11-17)",
    ),
    Source(
        key="windowsspyblocker-spy",
        title="WindowsSpyBlocker - Hosts spy rules",
        category="trackers",
        url=_github("crazy-max/WindowsSpyBlocker", "data/hosts/spy.txt"),
        homepage="https://github.com/crazy-max/WindowsSpyBlocker",
        spdx="MIT",
        copyright="Copyright (c) 2016-2022 CrazyMax",
        licence_read_at="LICENSE and the header of data/hosts/spy.txt (crazy-max/WindowsSpyBlocker, commit 7df0dedf)",
        note="not updated since 2022-05-16",
    ),
    Source(
        key="urlhaus",
        title="abuse.ch URLhaus host file",
        category="malware",
        url="https://urlhaus.abuse.ch/downloads/hostfile/",
        homepage="https://urlhaus.abuse.ch/",
        spdx="CC0-1.0",
        copyright="abuse.ch URLhaus",
        licence_read_at="the URLhaus API page's terms as quoted by others (\"commercial and non-commercial purpose "
        "without any limitations (CC0)\"); the file's header only links https://urlhaus.abuse.ch/api/",
        doubt="abuse.ch's newer terms of use (2025-11-04, as quoted by others) allow free use for not-for-profit "
        "purposes, route commercial use through a Spamhaus subscription and ask consent for derivative works; "
        "turn it off with --without urlhaus until abuse.ch or Spamhaus confirms",
        note="the only default malware source: without it the build has no malware names, and says so",
    ),
)

ACCEPT_FIRST: tuple[Source, ...] = tuple(
    Source(
        key=key,
        title=title,
        category=category,
        url=url,
        homepage=url,
        spdx="LicenseRef-unclear",
        copyright="",
        licence_read_at="not settled: an aggregate of upstream lists under their own terms",
    )
    for key, title, category, url in (
        ("hagezi-pro", "HaGeZi Multi PRO", "ads", "https://github.com/hagezi/dns-blocklists"),
        ("oisd-big", "oisd big", "ads", "https://oisd.nl/"),
        ("1hosts-lite", "1Hosts Lite", "ads", "https://github.com/badmojr/1Hosts"),
        ("blocklistproject-ads", "The Block List Project: ads", "ads", "https://github.com/blocklistproject/Lists"),
        ("adguard-dns-filter", "AdGuard DNS filter", "ads", "https://github.com/AdguardTeam/AdGuardSDNSFilter"),
        ("ultimate-hosts", "Ultimate Hosts Blacklist", "malware", "https://github.com/Ultimate-Hosts-Blacklist"),
    )
)
"""Large aggregates: an operator may use one only with --accept-licence KEY and a URL of their choosing."""

NOT_FOR_COMMERCIAL_USE: tuple[Source, ...] = tuple(
    Source(
        key=key,
        title=title,
        category=category,
        url="",
        homepage="",
        spdx=spdx,
        copyright="",
        licence_read_at="",
        note=note,
    )
    for key, title, category, spdx, note in (
        (
            "disconnect",
            "Disconnect tracking protection",
            "trackers",
            "CC-BY-NC-SA-4.0",
            "a commercial licence is available from Disconnect on request",
        ),
        (
            "peter-lowe",
            "Peter Lowe's ad and tracking server list",
            "ads",
            "LicenseRef-McRae-GPL",
            "non-commercial; commercial users must ask the author",
        ),
        ("phishing-army", "Phishing Army", "malware", "CC-BY-NC-4.0", "non-commercial"),
        ("openphish", "OpenPhish", "malware", "LicenseRef-OpenPhish", "needs written permission"),
    )
)
"""Their terms exclude a paid service: refused by name."""

NEEDS_REVIEW: tuple[Source, ...] = tuple(
    Source(
        key=key,
        title=title,
        category=category,
        url=url,
        homepage="https://easylist.to/",
        spdx="GPL-3.0-only OR CC-BY-SA-3.0",
        copyright="The EasyList authors",
        licence_read_at="https://easylist.to/ (dual licence)",
        note="share-alike applies to what we distribute; only `||name^` rules are used",
    )
    for key, title, category, url in (
        ("easyprivacy", "EasyPrivacy", "trackers", "https://easylist.to/easylist/easyprivacy.txt"),
        ("easylist", "EasyList", "ads", "https://easylist.to/easylist/easylist.txt"),
    )
)
"""Commercial use is allowed under copyleft terms: accepted like the aggregates, with --accept-licence KEY."""

KNOWN = {s.key: s for s in (*DEFAULTS, *ACCEPT_FIRST, *NEEDS_REVIEW, *NOT_FOR_COMMERCIAL_USE)}
