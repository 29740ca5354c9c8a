"""The shell around the pure core: parse SOURCE arguments, read everything, compile, then write atomically.

All reading and checking happens before the first byte is written, so a bad source leaves --out untouched.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from norex.blocklist import CATEGORIES, ZONE_TYPES
from norex.blocklist.compiler import compile_lists
from norex.blocklist.fetch import MAX_BYTES, TIMEOUT, Cache, Fetched, display, read_source
from norex.blocklist.parse import Scan, decode, scan
from norex.blocklist.render import CONF_NAME, MANIFEST_NAME, SourceInfo, manifest, render_conf, sha256
from norex.blocklist.sources import DEFAULTS, KNOWN, NOT_FOR_COMMERCIAL_USE, Source
from norex.errors import UsageError

REFUSED = {s.key for s in NOT_FOR_COMMERCIAL_USE}
DEFAULT_KEYS = {s.key for s in DEFAULTS}


@dataclass(frozen=True)
class SourceSpec:
    category: str
    location: str
    source: Source | None = None  # a known source (by its key), or None: the operator's own list


def parse_spec(arg: str) -> SourceSpec:
    """`ads=lists/ads.txt` (the operator's own list), `adaway` (a known source from its home) or
    `adaway=lists/adaway.txt` (a known source from elsewhere, a mirror or a copy) -> SourceSpec; the message names
    the argument, which the operator typed."""
    head, sep, location = arg.partition("=")
    key = head.strip().lower()
    if key in KNOWN:
        known = KNOWN[key]
        if key in REFUSED:
            raise UsageError(f"source {key}: {known.title} is not licensed for a paid service ({known.note})")
        if sep and not location.strip():
            raise UsageError(f"source {arg!r}: no path or URL after '='")
        if not (location.strip() if sep else known.url):
            raise UsageError(f"source {key}: {known.title} has no address of its own; give {key}=URL")
        return SourceSpec(known.category, location.strip() if sep else known.url, known)
    if not sep:
        choices = ", ".join(CATEGORIES)
        raise UsageError(f"source {display(arg)!r} is not CATEGORY=PATH_OR_URL ({choices}) nor a known source")
    if key not in CATEGORIES:
        raise UsageError(f"source {display(location)!r}: unknown category {key!r} (use {', '.join(CATEGORIES)})")
    if not location.strip():
        raise UsageError(f"source {arg!r}: no path or URL after '='")
    return SourceSpec(key, location.strip())


def default_specs(without: Sequence[str] = (), mirror: str | None = None) -> list[SourceSpec]:
    """The default sources, but those named in `without`; from `mirror`/KEY instead of their homes when given."""
    unknown = sorted(set(without) - DEFAULT_KEYS)
    if unknown:
        raise UsageError(f"--without {unknown[0]}: not a default source (defaults: {', '.join(sorted(DEFAULT_KEYS))})")
    base = mirror.rstrip("/") if mirror else None
    return [SourceSpec(s.category, f"{base}/{s.key}" if base else s.url, s) for s in DEFAULTS if s.key not in without]


def _load(spec: SourceSpec, reader: Callable[[str], bytes], accepted: bool = False) -> tuple[SourceInfo, Scan]:
    raw = reader(spec.location)
    info = SourceInfo(spec.category, display(spec.location), sha256(raw), len(raw), spec.source, accepted)
    return info, scan(decode(raw))


# A fresh copy with fewer than this share of the held copy's names is taken for a truncated one.
SHRINK_LIMIT = 0.5


class CachedReader:
    """Reads http(s) sources through the cache, keeping the last good copy in force when a fetch fails, or when a
    fresh copy has lost more than half the names (a truncated download); the rest as read_source does."""

    def __init__(self, cache: Cache, max_bytes: int, timeout: float) -> None:
        self.cache, self.max_bytes, self.timeout = cache, max_bytes, timeout
        self.fresh: dict[str, Fetched] = {}
        self.stale: dict[str, dict[str, Any]] = {}  # display(location) -> why and since when

    def __call__(self, location: str) -> bytes:
        if not location.lower().startswith(("http://", "https://")):
            return read_source(location, max_bytes=self.max_bytes, timeout=self.timeout)
        got = self.cache.fetch(location, max_bytes=self.max_bytes, timeout=self.timeout)
        if got.fresh:
            held = self.cache.held(location)
            if held is not None:
                before, now = len(scan(decode(held.data)).names), len(scan(decode(got.data)).names)
                if now < before * SHRINK_LIMIT:
                    got = replace(held, problem=f"the new copy has {now} names against {before}: truncated?")
        if got.problem is not None:
            self.stale[display(location)] = {"why": got.problem, "good_since": got.good_since}
        elif got.fresh:
            self.fresh[location] = got
        return got.data

    def keep(self, now: int) -> None:
        for location, fetched in self.fresh.items():
            self.cache.keep(location, fetched, now)


def build(
    source_args: Sequence[str],
    out: Path,
    *,
    allow: str | None = None,
    zone_type: str = ZONE_TYPES[0],
    max_bytes: int = MAX_BYTES,
    timeout: float = TIMEOUT,
    defaults: bool = False,
    without: Sequence[str] = (),
    mirror: str | None = None,
    accept: Sequence[str] = (),
    cache: Path | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    """Compile the sources (the defaults first when asked) into OUT/blocklist.conf and OUT/manifest.json; return
    the manifest. A known source outside the defaults needs its key in `accept`, which the manifest records. With
    `cache`, http(s) sources are fetched conditionally and a failing one keeps its last good copy in force (the
    manifest's `stale` says why and since when)."""
    if zone_type not in ZONE_TYPES:
        raise UsageError(f"unknown zone type {zone_type!r} (use {', '.join(ZONE_TYPES)})")
    if not source_args and not defaults:
        raise UsageError("give --defaults or at least one source, e.g. ads=lists/ads.txt")
    if (without or mirror) and not defaults:
        raise UsageError("--without and --mirror apply to --defaults")
    specs = [*(default_specs(without, mirror) if defaults else []), *(parse_spec(arg) for arg in source_args)]
    for key in accept:
        if key not in KNOWN or key in DEFAULT_KEYS or key in REFUSED:
            raise UsageError(f"--accept-licence {key}: not a source whose licence needs accepting")
    for spec in specs:
        if spec.source is not None and spec.source.key not in DEFAULT_KEYS and spec.source.key not in accept:
            raise UsageError(
                f"source {spec.source.key}: {spec.source.title} is not a default ({spec.source.licence_read_at}); "
                f"read its terms, then add --accept-licence {spec.source.key}"
            )
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")

    def plain(location: str) -> bytes:
        return read_source(location, max_bytes=max_bytes, timeout=timeout)

    reader: Callable[[str], bytes] = CachedReader(Cache(cache), max_bytes, timeout) if cache is not None else plain
    scans = [_load(spec, reader, spec.source is not None and spec.source.key in accept) for spec in specs]
    allowed = _load(SourceSpec("allow", allow), reader) if allow else None

    compiled = compile_lists([(info.category, scanned) for info, scanned in scans], allowed[1] if allowed else None)
    conf = render_conf(compiled, zone_type, [info for info, _ in scans], allowed[0] if allowed else None)
    result = manifest(compiled, zone_type, scans, allowed, conf)
    if isinstance(reader, CachedReader):
        for entry in result["sources"]:
            entry["stale"] = reader.stale.get(entry["location"])
        reader.keep(int(time.time()) if now is None else now)
    _write_outputs(out, {CONF_NAME: conf, MANIFEST_NAME: (json.dumps(result, indent=2) + "\n").encode()})
    return result


def _write_outputs(out: Path, files: dict[str, bytes]) -> None:
    """Each file appears whole or not at all (temp file in the same directory, fsync, rename)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create ({exc.strerror or exc})") from None
    for name, data in files.items():
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, out / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    _fsync_dir(out)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
