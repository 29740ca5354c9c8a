"""`norex blocklist ...`: compile public block lists into the include file a customer's Unbound loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from norex.blocklist import CATEGORIES, ZONE_TYPES
from norex.blocklist.build import build as build_blocklist


@click.group()
def blocklist() -> None:
    """DNS blocklists (ads, trackers, malware) for the resolver on each customer server."""


@blocklist.command()
@click.argument("sources", nargs=-1, required=True, metavar="CATEGORY=PATH_OR_URL...")
@click.option("--allow", metavar="FILE", help="Names never to block (same line formats; `*.name` for a subtree).")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for blocklist.conf and manifest.json (created if missing).",
)
@click.option(
    "--zone-type",
    type=click.Choice(ZONE_TYPES),
    default=ZONE_TYPES[0],
    show_default=True,
    help="Unbound local-zone type for blocked names.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def build(sources: tuple[str, ...], allow: str | None, out: Path, zone_type: str, as_json: bool) -> None:
    """Compile SOURCES into an Unbound include file.

    Each SOURCE is CATEGORY=PATH_OR_URL with CATEGORY one of ads, trackers, malware; a name listed in
    several categories counts in the first one given. Hosts files, plain names, `||name^` and RPZ
    `name CNAME .` lines are understood; everything else is rejected and counted, never guessed.
    """
    result = build_blocklist(sources, out, allow=allow, zone_type=zone_type)
    for entry in result["sources"]:
        if entry["valid"] == 0:
            click.echo(f"norex: warning: {entry['category']} source {entry['location']} has no usable names", err=True)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(summary(result, out))


def summary(result: dict[str, Any], out: Path) -> str:
    """Counts only: the privacy rule forbids printing domains anywhere but the output file."""
    cats = ", ".join(f"{c} {result['categories'][c]:,}" for c in CATEGORIES)
    dropped = result["dropped"]
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in result["rejected"].items())
    rejected = f"rejected {result['rejected_total']:,}" + (f" ({reasons})" if reasons else "")
    return "\n".join(
        [
            f"blocked {result['total']:,} names ({cats}); {result['exceptions']:,} allowlist exceptions",
            f"{rejected}; dropped {dropped['duplicate']:,} duplicates,"
            f" {dropped['covered-by-parent']:,} covered by a parent, {dropped['allowlisted']:,} allowlisted",
            f"wrote {out / 'blocklist.conf'} (sha256 {result['output']['sha256'][:16]}…) and manifest.json",
        ]
    )
