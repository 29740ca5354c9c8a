"""`norex blocklist ...`: compile public block lists into the include file a customer's Unbound loads."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from norex.blocklist import CATEGORIES, ZONE_TYPES
from norex.blocklist.build import build as build_blocklist
from norex.errors import UsageError


@click.group()
def blocklist() -> None:
    """DNS blocklists (ads, trackers, malware) for the resolver on each customer server."""


@blocklist.command()
@click.argument("sources", nargs=-1, metavar="[CATEGORY=PATH_OR_URL | KEY | KEY=PATH_OR_URL]...")
@click.option("--defaults", is_flag=True, help="Build from the default sources (`norex blocklist sources` lists them).")
@click.option("--without", multiple=True, metavar="KEY", help="Leave out this default source (repeatable).")
@click.option("--mirror", metavar="BASE_URL", help="Fetch each default source from BASE_URL/KEY instead of its home.")
@click.option(
    "--accept-licence",
    "accept",
    multiple=True,
    metavar="KEY",
    help="Use this known source outside the defaults, whose terms you read and accept (recorded in the manifest).",
)
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep each http(s) source's last good copy here: fetched again only when changed (ETag, Last-Modified), "
    "and kept in force when a fetch fails or a new copy lost over half its names.",
)
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
def build(
    sources: tuple[str, ...],
    defaults: bool,
    without: tuple[str, ...],
    mirror: str | None,
    accept: tuple[str, ...],
    cache: Path | None,
    allow: str | None,
    out: Path,
    zone_type: str,
    as_json: bool,
) -> None:
    """Compile SOURCES (and with --defaults, the default sources first) into an Unbound include file.

    A SOURCE is CATEGORY=PATH_OR_URL (a list of your own; CATEGORY one of ads, trackers, malware), or the KEY of
    a known source (`norex blocklist sources`), fetched from its home or from KEY=PATH_OR_URL. A name listed in
    several categories counts in the first one given. Hosts files, plain names, `||name^` and RPZ
    `name CNAME .` lines are understood; everything else is rejected and counted, never guessed. The include
    file's header carries each known source's licence notice.
    """
    result = build_blocklist(
        sources, out, allow=allow, zone_type=zone_type, defaults=defaults, without=without, mirror=mirror,
        accept=accept, cache=cache,
    )  # fmt: skip
    report(result, out, as_json, defaults)


@blocklist.command()
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def update(as_json: bool) -> None:
    """Rebuild the fleet's list from the default sources (the control plane's own build, used when
    NOREX_BLOCKLIST_FILE is unset; NOREX_BLOCKLIST_DIR, NOREX_BLOCKLIST_MIRROR, NOREX_BLOCKLIST_WITHOUT).

    Each source is asked again with its ETag and Last-Modified; one that fails keeps its last good copy, with a
    warning. Run it daily (a timer), then `norex rollout` to push a changed list to every server.
    """
    from norex.blocklist.fleet import update as update_fleet
    from norex.provision import control_plane_id, get_provisioner
    from norex.settings import load_settings

    settings = load_settings()
    if settings.backend == "lab":
        mirror = get_provisioner("lab", control_plane_id(settings.database_url)).blocklist_mirror
    else:
        mirror = lambda: None  # noqa: E731 - the defaults' homes
    result = update_fleet(settings, mirror)
    report(result, settings.blocklist_dir, as_json, True)


def report(result: dict[str, Any], out: Path, as_json: bool, defaults: bool) -> None:
    """Warnings on stderr (an empty source, a stale copy kept, a category without a source), then the summary."""
    for entry in result["sources"]:
        if entry["valid"] == 0:
            click.echo(f"norex: warning: {entry['category']} source {entry['location']} has no usable names", err=True)
    for entry in result["sources"]:
        stale = entry.get("stale")
        if stale:
            since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stale["good_since"]))
            click.echo(f"norex: warning: {entry['location']}: {stale['why']}; kept its copy of {since}", err=True)
    for category in result["categories_without_source"] if defaults else ():  # the defaults cover all three
        click.echo(f"norex: warning: no source of this build gives {category} names", err=True)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(summary(result, out))


@blocklist.command()
@click.option(
    "--manifest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='A build\'s manifest.json: print its "Blocklist sources and licences" page (Markdown).',
)
def sources(manifest: Path | None) -> None:
    """The sources we know and their licences; with --manifest, the sources page of that build."""
    from norex.blocklist import sources as known
    from norex.blocklist.page import sources_page

    if manifest is not None:
        try:
            data = json.loads(manifest.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"--manifest {manifest}: not a build's manifest ({type(exc).__name__})") from None
        if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
            raise UsageError(f"--manifest {manifest}: not a build's manifest")
        click.echo(sources_page(data), nl=False)
        return
    groups = (
        ("default", known.DEFAULTS),
        ("--accept-licence KEY", (*known.ACCEPT_FIRST, *known.NEEDS_REVIEW)),
        ("refused", known.NOT_FOR_COMMERCIAL_USE),
    )
    for label, group in groups:
        for s in group:
            doubt = " (terms in doubt)" if s.doubt else ""
            click.echo(f"{s.key:28} {s.category:9} {label:22} {s.spdx}{doubt}  {s.title}")


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
