"""`norex lab doctor`: the tools and kernel features this host needs to run the lab, and the exact install line."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from norex.errors import MissingPrerequisite


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    package: str | None  # Debian package that provides it
    detail: str = ""


# (what, how to tell, Debian package)
TOOLS = [
    ("systemd-nspawn", "systemd-nspawn", "systemd-container"),
    ("debootstrap", "debootstrap", "debootstrap"),
    ("iproute2", "ip", "iproute2"),
    ("nftables", "nft", "nftables"),
    ("wireguard-go", "wireguard-go", "wireguard-go"),
    ("wireguard-tools", "wg", "wireguard-tools"),
    ("nsd", "nsd", "nsd"),
    ("ldnsutils", "ldns-signzone", "ldnsutils"),
    ("apt-cacher-ng", "apt-cacher-ng", "apt-cacher-ng"),
    ("openssh-client", "ssh", "openssh-client"),
    ("dig", "dig", "bind9-dnsutils"),
    ("fstrm_capture", "fstrm_capture", "fstrm-bin"),
    ("dnstap-read", "dnstap-read", "bind9-dnsutils"),
]


def run_checks() -> list[Check]:
    checks = [Check("root", os.geteuid() == 0, None, "the lab mounts, boots containers and makes namespaces")]
    for what, binary, package in TOOLS:
        checks.append(Check(what, shutil.which(binary) is not None, package))
    checks.append(Check("tun", Path("/dev/net/tun").exists(), None, "/dev/net/tun is needed by wireguard-go"))
    checks.append(
        Check(
            "overlayfs", "overlay" in Path("/proc/filesystems").read_text(), None, "the kernel must support overlayfs"
        )
    )
    return checks


def install_command(checks: list[Check]) -> str | None:
    packages = sorted({c.package for c in checks if not c.ok and c.package})
    return f"apt-get install -y --no-install-recommends {' '.join(packages)}" if packages else None


def require() -> None:
    """Raise a one-line error naming the first problem and its fix."""
    checks = run_checks()
    bad = [c for c in checks if not c.ok]
    if not bad:
        return
    if not checks[0].ok:
        raise MissingPrerequisite("the lab needs root (it mounts, boots containers and makes namespaces)")
    fix = install_command(checks)
    names = ", ".join(c.name for c in bad)
    if fix:
        raise MissingPrerequisite(f"missing {names}: install with `{fix}`")
    raise MissingPrerequisite(f"missing {names}: {bad[0].detail}")
