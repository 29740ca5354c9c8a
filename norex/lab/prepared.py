"""The prepared image: the lab's counterpart of production's prepared snapshot.

pulumi/README.md ("How a prepared image closes it") builds the production snapshot from a builder server
that belongs to no customer: converged with the same roles, no key made on it, cleaned of anything
per-machine, then snapshotted. Here the builder is a lab server made from the base image. site.yml runs on
it with the package and no_logs steps only (`--tags packages,no_logs`): every role's packages and the
pending security updates installed in base's one apt-get run, the journal volatile, no logger, apt's and
dpkg's logs off, the tmpfs mounts declared. The WireGuard, agent and resolver steps do not run, so no key
exists on it. It is powered off, its disk copied into a folder of its own, and that copy cleaned as the
production procedure says (machine id, SSH host keys, the lab's key, its network file, every log file).

A server made from it still gets the whole converge; it finds the packages there and nothing pending. The
image is rebuilt when the base image or the collection changes (its folder is named after both).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from norex.errors import UsageError
from norex.lab.image import SUITE, host_mirrors, prune_unused_images, recipe_id, scrub_per_machine
from norex.lab.state import cache_dir, locked
from norex.lab.system import LabError, run

IMAGES = ("stock", "prepared")
BUILDER = "norex-image-builder"
TAGS = "packages,no_logs"
PREFIX = f"prepared-{SUITE}-"

# Every role's packages go into base's one apt-get run, as site.yml does when the agent is on (the extra
# variable wins over the play's own base_packages_also, which leaves the agent's out without its CA).
ALL_PACKAGES = "{{ __firewall_packages + __wireguard_packages + __resolver_packages + __agent_packages }}"

# What the builder leaves that is its own, not the image's (pulumi/README.md, step 3, and the lab's
# personalisation in norex.lab.servers), besides what norex.lab.image.scrub_per_machine removes from any image.
PER_MACHINE = (
    "etc/systemd/network/10-host0.network",
    "root/.ssh",
    "root/.ansible",
    "root/.bash_history",
    "var/lib/systemd/random-seed",
    "var/lib/systemd/credential.secret",
    "var/lib/systemd/timers",
    "var/log/journal",
    "tmp/*",
    "var/tmp/*",
)


def image_folder(image: str, progress: Callable[[str], None] = lambda _msg: None) -> Path | None:
    """The folder a new lab server boots from: the prepared image (built first if needed; not under the lab's
    lock, since the build makes a lab server), or None for the stock base image."""
    if image not in IMAGES:
        raise UsageError(f"unknown lab image {image!r}: choose {' or '.join(IMAGES)}")
    return ensure_prepared_image(progress) if image == "prepared" else None


def prepared_id() -> str:
    from norex.converge.version import roles_version

    # This file's own text stands for the build's steps: changing any of them rebuilds the image.
    steps = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    text = json.dumps([steps, recipe_id(host_mirrors()), roles_version()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def prepared_dir() -> Path:
    return cache_dir() / f"{PREFIX}{prepared_id()}"


def is_built() -> bool:
    stamp = prepared_dir() / ".norex-image.json"
    return stamp.is_file()


def ensure_prepared_image(progress: Callable[[str], None] = print) -> Path:
    """Build the prepared image if it is missing or its recipe changed; return its folder."""
    target = prepared_dir()
    if is_built():
        return target
    with locked(".prepared.lock"):  # not the lab's own lock: the build makes a lab server
        if is_built():  # another process built it while this one waited
            return target
        progress("building the lab's prepared image (base image, packages, no_logs; about a minute)...")
        started = time.monotonic()
        building = cache_dir() / f".building-{PREFIX}"
        shutil.rmtree(building, ignore_errors=True)
        try:
            _build(building, progress)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        (building / ".norex-image.json").write_text(
            json.dumps({"recipe": prepared_id(), "built_seconds": round(time.monotonic() - started, 1)}) + "\n"
        )
        shutil.rmtree(target, ignore_errors=True)
        building.rename(target)
        prune_unused_images(keep=target, prefix=PREFIX)
    return target


def _build(building: Path, progress: Callable[[str], None]) -> None:
    from norex.lab import servers

    with contextlib.suppress(Exception):
        servers.down(BUILDER)  # a builder left by an interrupted build
    servers.up(BUILDER, progress=progress)
    try:
        _converge_builder()
        servers.stop(BUILDER)
        servers.mount(BUILDER)
        rootfs = servers.paths(BUILDER)["rootfs"]
        try:
            # The merged view: the base image with the builder's changes (deletions included) applied.
            run(["cp", "-a", "--one-file-system", f"{rootfs}/.", str(building)])
        finally:
            run(["umount", str(rootfs)], check=False)
    finally:
        servers.down(BUILDER)
    _clean(building)


def _converge_builder() -> None:
    from norex.converge.runner import run_playbook
    from norex.lab import inventory as lab_inventory
    from norex.project import SITE_PLAYBOOK
    from norex.tunnel import TUNNEL

    # The lab's own inventory (`norex lab inventory`: connection, ops networks, the lab root), limited to the builder.
    extravars: dict[str, Any] = {**TUNNEL.role_variables(), "wireguard_peers": [], "base_packages_also": ALL_PACKAGES}
    failed: list[str] = []

    def keep_failures(event: dict[str, Any]) -> None:
        if event.get("event") in ("runner_on_failed", "runner_on_unreachable"):
            data = event.get("event_data") or {}
            if not data.get("ignore_errors"):
                failed.append(str(data.get("task") or "a task"))

    status, rc = run_playbook(SITE_PLAYBOOK, lab_inventory.inventory(), [BUILDER], extravars, keep_failures, tags=TAGS)
    if status != "successful" or rc != 0:
        where = f" at {failed[0]!r}" if failed else ""
        raise LabError(f"the prepared image's builder did not converge{where} ({status}, exit {rc})")


def _clean(root: Path) -> None:
    """What pulumi/README.md's step 3 removes, and the lab's personalisation of the builder."""
    scrub_per_machine(root)
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    for pattern in PER_MACHINE:
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
