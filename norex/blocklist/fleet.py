"""The fleet's blocklist: the one include file every converge pushes to every server's resolver.

NOREX_BLOCKLIST_FILE names a build of the operator's own choosing. Unset, the control plane keeps its own build
of the default sources (ads, trackers, malware; `norex blocklist sources`) in NOREX_BLOCKLIST_DIR, with a cache
of each source's last good copy: the first converge that needs it builds it, `norex blocklist update` refreshes
it (then `norex rollout` pushes the new list). So a fleet blocks all three categories out of the box, and no
server fetches anything itself.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from norex.blocklist.build import build
from norex.blocklist.render import MANIFEST_NAME
from norex.errors import NorexError, UsageError
from norex.settings import Settings

ZONE_TYPE = "always_refuse"  # what the resolver role expects: a blocked name gets REFUSED, nothing else


def manifest_path(settings: Settings) -> Path:
    """The manifest of the list in force (it may not exist yet)."""
    return settings.fleet_blocklist_file.parent / MANIFEST_NAME


def ensure(settings: Settings, backend_mirror: Callable[[], str | None] = lambda: None) -> Path:
    """The include file converges push (Settings.fleet_blocklist_file): NOREX_BLOCKLIST_FILE, else the control
    plane's own build of the defaults, built now when there is none yet (one builder at a time; the others wait
    and use its result). `backend_mirror()`: where this backend fetches the defaults from when not from their
    homes (the lab's web site; Provisioner.blocklist_mirror), asked only when a build is needed."""
    conf = settings.fleet_blocklist_file
    if settings.blocklist_file is not None or conf.is_file():
        return conf
    with _locked(settings.blocklist_dir):
        if not conf.is_file():
            _build(settings, backend_mirror)
    return conf


def update(settings: Settings, backend_mirror: Callable[[], str | None] = lambda: None) -> dict[str, Any]:
    """Rebuild the control plane's own list from the defaults (conditional fetches through the cache; a failing
    source keeps its last good copy); return the manifest. The list in force changes only when it succeeds."""
    if settings.blocklist_file is not None:
        raise UsageError(
            "NOREX_BLOCKLIST_FILE is set: the fleet uses that build; rebuild it with norex blocklist build"
        )
    with _locked(settings.blocklist_dir):
        return _build(settings, backend_mirror)


def _build(settings: Settings, backend_mirror: Callable[[], str | None]) -> dict[str, Any]:
    source = settings.blocklist_mirror or backend_mirror()
    try:
        return build(
            [],
            settings.blocklist_dir,
            defaults=True,
            without=settings.blocklist_without,
            mirror=source,
            cache=settings.blocklist_dir / "cache",
            zone_type=ZONE_TYPE,
        )
    except UsageError as exc:
        # A source that cannot be fetched yet (no copy of it was ever good): the job is tried again later.
        raise NorexError(f"the fleet's blocklist (the default sources) could not be built: {exc}") from None


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = (folder / ".lock").open("a")
    except OSError as exc:
        raise UsageError(f"NOREX_BLOCKLIST_DIR {folder}: cannot use ({exc.strerror or exc})") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
