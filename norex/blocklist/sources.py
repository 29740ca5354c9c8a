"""Recommended sources and their licences. The repository ships no list data: operators fetch at build time.

NorexVPN is a commercial service, so a default source must allow commercial use without conditions we cannot
meet automatically. Only one list clears that bar with certainty today; everything else is recorded with what
is known about its licence so that nobody enables it by accident.

Check a source's current terms before each change here: licences and access rules of public lists do change
(abuse.ch, for instance, asks feeds not to be fetched more often than every five minutes).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    name: str
    category: str
    url: str
    licence: str
    commercial_use: str  # "yes", "with obligations", "no"
    note: str


DEFAULTS: tuple[Source, ...] = (
    Source(
        name="URLhaus hostfile (abuse.ch)",
        category="malware",
        url="https://urlhaus.abuse.ch/downloads/hostfile/",
        licence="CC0-1.0",
        commercial_use="yes",
        note="Hosts format, malware distribution sites; the RPZ export (`/downloads/rpz/`) parses as well.",
    ),
)
"""Safe to enable by default: `norex blocklist build malware=<url> ...`."""

NEEDS_REVIEW: tuple[Source, ...] = (
    Source(
        name="EasyPrivacy",
        category="trackers",
        url="https://easylist.to/easylist/easyprivacy.txt",
        licence="GPL-3.0-only OR CC-BY-SA-3.0",
        commercial_use="with obligations",
        note="Share-alike and attribution apply to what we distribute to customer servers; only `||name^` rules "
        "are used, the rest (most of the list) is rejected as unsupported-adblock.",
    ),
    Source(
        name="EasyList",
        category="ads",
        url="https://easylist.to/easylist/easylist.txt",
        licence="GPL-3.0-only OR CC-BY-SA-3.0",
        commercial_use="with obligations",
        note="As EasyPrivacy; a browser list, so few of its rules are plain domain anchors.",
    ),
)
"""Commercial use is allowed, but only under copyleft/attribution terms: needs a decision before enabling."""

NOT_FOR_COMMERCIAL_USE: tuple[Source, ...] = (
    Source(
        name="Disconnect tracking protection",
        category="trackers",
        url="",
        licence="CC-BY-NC-SA-4.0",
        commercial_use="no",
        note="Commercial licence available from Disconnect on request.",
    ),
    Source(
        name="Peter Lowe's ad and tracking server list",
        category="ads",
        url="",
        licence="McRae GPL (non-commercial)",
        commercial_use="no",
        note="Commercial users must ask the author.",
    ),
)
"""Popular, but their licences exclude a paid service: do not use without a separate licence."""

# Aggregated lists (hosts-file compilations of many upstream lists) are not listed at all: each upstream keeps its
# own licence, and some of those are non-commercial, so the aggregate's own licence does not settle the question.
