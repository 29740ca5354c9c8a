"""The base image: a minimal Debian 12 built once with debootstrap and cloned per server.

It holds only what a fresh cloud Debian 12 image has (systemd, openssh-server, python3); the roles
install the rest. The mirror is read from this machine's own apt configuration, never hard-coded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from norex.lab import plan
from norex.lab.state import cache_dir, servers_dir
from norex.lab.system import LabError, run

SUITE = "bookworm"
INCLUDE = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "iproute2",
    "ca-certificates",
    "debian-archive-keyring",
)
RECIPE_VERSION = 1  # bump when the steps below change, so warm caches are rebuilt


@dataclass(frozen=True)
class Mirrors:
    debian: str
    security: str | None


def base_dir(mirrors: Mirrors) -> Path:
    """One folder per recipe: servers made from an older image keep booting from it."""
    return cache_dir() / f"base-{SUITE}-{recipe_id(mirrors)}"


def recipe_id(mirrors: Mirrors) -> str:
    text = json.dumps([RECIPE_VERSION, SUITE, INCLUDE, mirrors.debian, mirrors.security])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def host_mirrors() -> Mirrors:
    """The Debian and Debian-security URIs this host's apt uses (NOREX_LAB_MIRROR overrides)."""
    override = os.environ.get("NOREX_LAB_MIRROR")
    debian = security = None
    for uri, suites in _apt_sources():
        if any(s.endswith("-security") for s in suites):
            security = security or uri
        elif SUITE in suites or "stable" in suites:
            debian = debian or uri
    debian = override or debian
    if not debian:
        raise LabError("no Debian mirror found in /etc/apt/sources.list*; set NOREX_LAB_MIRROR to a mirror URL")
    return Mirrors(debian=debian.rstrip("/"), security=security.rstrip("/") if security else None)


def _apt_sources() -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    paths = [
        Path("/etc/apt/sources.list"),
        *sorted(Path("/etc/apt/sources.list.d").glob("*.list")),
        *sorted(Path("/etc/apt/sources.list.d").glob("*.sources")),
    ]
    for path in paths:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            found += _parse_deb822(text)
        else:
            found += _parse_one_line(text)
    return found


def _parse_one_line(text: str) -> list[tuple[str, list[str]]]:
    out = []
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = [w for w in words[1:] if not w.startswith("[")]
        if len(words) >= 2 and words[0].startswith(("http://", "https://")):
            out.append((words[0], [words[1]]))
    return out


def _parse_deb822(text: str) -> list[tuple[str, list[str]]]:
    out = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[0].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        for uri in fields.get("uris", "").split():
            if uri.startswith(("http://", "https://")):
                out.append((uri, fields.get("suites", "").split()))
    return out


def apt_conf_for_servers(mirrors: Mirrors) -> tuple[str, str]:
    """sources.list and an apt.conf snippet for lab servers: the host's mirror, through the lab's cache."""
    sources = [f"deb {mirrors.debian} {SUITE} main", f"deb {mirrors.debian} {SUITE}-updates main"]
    if mirrors.security:
        sources.append(f"deb {mirrors.security} {SUITE}-security main")
    conf = [f'Acquire::http::Proxy "http://{plan.HOST4}:{plan.APT_CACHE_PORT}";']
    # Mirror the host's own relaxations (a snapshot mirror's Release files are past their Valid-Until).
    dump = run(["apt-config", "dump"], check=False).stdout
    for key in ("Acquire::Check-Valid-Until", "Acquire::Check-Date"):
        for line in dump.splitlines():
            if line.startswith(key + " "):
                conf.append(line.strip())
    return "\n".join(sources) + "\n", "\n".join(conf) + "\n"


def ensure_base_image(progress=print) -> Path:
    """Build the base image if it is missing or its recipe changed; return its folder."""
    mirrors = host_mirrors()
    target = base_dir(mirrors)
    stamp = target / ".norex-image.json"
    want = recipe_id(mirrors)
    if stamp.is_file() and json.loads(stamp.read_text()).get("recipe") == want:
        return target
    cache_dir().mkdir(parents=True, exist_ok=True)
    building = cache_dir() / f".building-{SUITE}"
    shutil.rmtree(building, ignore_errors=True)
    progress(f"building the lab base image (debootstrap {SUITE}, about a minute)...")
    started = time.monotonic()
    proc = subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE, str(building), mirrors.debian],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        shutil.rmtree(building, ignore_errors=True)
        raise LabError(f"debootstrap failed: {tail[0]}")
    _prepare(building, mirrors)
    (building / ".norex-image.json").write_text(
        json.dumps({"recipe": want, "suite": SUITE, "built_seconds": round(time.monotonic() - started, 1)}) + "\n"
    )
    shutil.rmtree(target, ignore_errors=True)  # a folder without its stamp is an interrupted copy
    building.rename(target)
    prune_unused_images(keep=target)
    return target


def prune_unused_images(keep: Path, prefix: str = f"base-{SUITE}") -> None:
    """Remove images (base, or prepared: norex.lab.prepared) of older recipes that no lab server boots from any more."""
    used = {keep}
    for lower in servers_dir().glob("*/lower"):
        used.add(Path(lower.read_text().strip()))
    for folder in cache_dir().glob(f"{prefix}*"):
        if folder not in used:
            shutil.rmtree(folder, ignore_errors=True)


def _prepare(root: Path, mirrors: Mirrors) -> None:
    """Make the debootstrapped tree look like a fresh provider image, minus anything per-machine."""
    sources, conf = apt_conf_for_servers(mirrors)
    (root / "etc/apt/sources.list").write_text(sources)
    (root / "etc/apt/apt.conf.d/01norex-lab-mirror").write_text(conf)
    # networkd configures host0 from the per-server file the lab writes.
    run(["systemctl", f"--root={root}", "enable", "systemd-networkd.service"])
    for lst in (root / "var/lib/apt/lists").glob("*"):
        if lst.is_file():
            lst.unlink()
    scrub_per_machine(root)


def scrub_per_machine(root: Path) -> None:
    """What no image may carry (the base image, and the prepared one in norex.lab.prepared): host keys and ids
    (each server gets its own), the resolver of whatever built it, downloaded packages, log files."""
    for f in (root / "etc/ssh").glob("ssh_host_*"):
        f.unlink()
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    (root / "etc/hostname").unlink(missing_ok=True)
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("# lab server: no provider resolver\n")
    run(["chroot", str(root), "apt-get", "clean"])
    for f in (root / "var/log").rglob("*"):
        if f.is_file() or f.is_symlink():
            f.unlink()  # the builder's (debootstrap's) own logs are not part of an image
