"""The shell around the pure core: parse SOURCE arguments, read everything, compile, then write atomically.

All reading and checking happens before the first byte is written, so a bad source leaves --out untouched.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from norex.blocklist import CATEGORIES, ZONE_TYPES
from norex.blocklist.compiler import compile_lists
from norex.blocklist.fetch import MAX_BYTES, TIMEOUT, display, read_source
from norex.blocklist.parse import Scan, decode, scan
from norex.blocklist.render import CONF_NAME, MANIFEST_NAME, SourceInfo, manifest, render_conf, sha256
from norex.errors import UsageError


@dataclass(frozen=True)
class SourceSpec:
    category: str
    location: str


def parse_spec(arg: str) -> SourceSpec:
    """`ads=lists/ads.txt` -> SourceSpec; the message names the argument, which the operator typed."""
    category, sep, location = arg.partition("=")
    if not sep:
        raise UsageError(f"source {display(arg)!r} is not CATEGORY=PATH_OR_URL (categories: {', '.join(CATEGORIES)})")
    category = category.strip().lower()
    if category not in CATEGORIES:
        raise UsageError(f"source {display(location)!r}: unknown category {category!r} (use {', '.join(CATEGORIES)})")
    if not location.strip():
        raise UsageError(f"source {arg!r}: no path or URL after '='")
    return SourceSpec(category, location.strip())


def _load(location: str, category: str, reader: Callable[[str], bytes]) -> tuple[SourceInfo, Scan]:
    raw = reader(location)
    return SourceInfo(category, display(location), sha256(raw), len(raw)), scan(decode(raw))


def build(
    source_args: Sequence[str],
    out: Path,
    *,
    allow: str | None = None,
    zone_type: str = ZONE_TYPES[0],
    max_bytes: int = MAX_BYTES,
    timeout: float = TIMEOUT,
) -> dict[str, Any]:
    """Compile the sources into OUT/blocklist.conf and OUT/manifest.json; return the manifest."""
    if zone_type not in ZONE_TYPES:
        raise UsageError(f"unknown zone type {zone_type!r} (use {', '.join(ZONE_TYPES)})")
    if not source_args:
        raise UsageError("give at least one source, e.g. malware=lists/urlhaus-hosts.txt")
    specs = [parse_spec(arg) for arg in source_args]
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")

    def reader(location: str) -> bytes:
        return read_source(location, max_bytes=max_bytes, timeout=timeout)

    scans = [_load(spec.location, spec.category, reader) for spec in specs]
    allowed = _load(allow, "allow", reader) if allow else None

    compiled = compile_lists([(info.category, scanned) for info, scanned in scans], allowed[1] if allowed else None)
    conf = render_conf(compiled, zone_type, [info for info, _ in scans], allowed[0] if allowed else None)
    result = manifest(compiled, zone_type, scans, allowed, conf)
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
