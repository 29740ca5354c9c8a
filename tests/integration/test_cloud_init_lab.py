"""The first-boot bootcmd on a real lab server: afterwards nothing of the first boot is left on its disk.

The lab has no cloud-init, so the test plants what cloud-init and a persistent journal leave after a
first boot, runs the exact bootcmd script cloud-init would build from the rendered user data, reboots,
stops the server and searches its whole writable layer (needs root).
"""

from __future__ import annotations

import base64
import importlib
import os
import stat
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import ensure_absent, norex, on_server

PULUMI = Path(__file__).resolve().parents[2] / "pulumi"
sys.path.insert(0, str(PULUMI))
cloud_init = importlib.import_module("norex_pulumi.cloud_init")

pytestmark = pytest.mark.lab

NAME = "pu-cloudinit"
MARKER = f"norex-first-boot-{uuid.uuid4().hex}"
LATER = f"norex-after-reboot-{uuid.uuid4().hex}"
# What a first boot of a stock image leaves behind (cloud-init 22.4 layout on Debian 12).
PLANTED = (
    "var/log/cloud-init.log",
    "var/log/cloud-init-output.log",
    "var/log/syslog",
    "var/lib/cloud/instances/i-1/user-data.txt",
    "var/lib/cloud/instances/i-1/user-data.txt.i",
    "var/lib/cloud/instances/i-1/cloud-config.txt",
    "var/lib/cloud/instances/i-1/obj.pkl",
    "var/lib/cloud/instances/i-1/sem/config_ssh",
    "var/lib/cloud/data/instance-id",
)
SYMLINK = "var/lib/cloud/instance"
GONE = (*PLANTED, SYMLINK, "var/log/journal")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    ensure_absent(NAME)
    try:
        norex("lab", "up", NAME, "--json")
        yield NAME
    finally:
        ensure_absent(NAME)


def disk(name: str) -> Path:
    return Path(norex("lab", "disk", name).stdout.strip())


def present(root: Path, rel: str) -> bool:
    """Exists in the writable layer and is not an overlayfs whiteout (the mark of a deleted file)."""
    path = root / rel
    if not os.path.lexists(path):
        return False
    st = path.lstat()
    return not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0)


def holding(root: Path, needle: str) -> list[str]:
    """Every regular file under root whose bytes contain needle."""
    found = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink() and needle.encode() in path.read_bytes():
                found.append(str(path.relative_to(root)))
    return found


def wait_for(name: str, command: str, accept: tuple[str, ...], timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        proc = norex("lab", "ssh", name, "--", command, check=False, timeout=60)
        last = proc.stdout.strip()
        if last in accept:
            return last
        time.sleep(1)
    raise AssertionError(f"{name}: `{command}` never answered {accept} (last: {last!r})")


def plant_first_boot(name: str) -> None:
    files = " ".join(f"/{rel}" for rel in PLANTED)
    on_server(
        name,
        f"set -e; for f in {files}; do mkdir -p $(dirname $f); echo 'first boot {MARKER}' > $f; done; "
        f"ln -sfn /var/lib/cloud/instances/i-1 /{SYMLINK}; "
        f"logger -t pu-test '{MARKER}'; journalctl --flush; journalctl --sync",
    )


def run_bootcmd(name: str) -> None:
    """The script cloud-init's bootcmd module would run, built from the rendered user data."""
    commands = yaml.safe_load(cloud_init.render())["bootcmd"]
    script = base64.b64encode(cloud_init.shellify(commands).encode()).decode()
    on_server(name, f"echo {script} | base64 -d | sh")
    # Step 5 runs as a transient unit; in the lab nothing orders it after cloud-init, so it runs at once.
    wait_for(name, f"systemctl is-active {cloud_init.CLEANUP_UNIT}; true", ("inactive", "failed", "unknown"))


def reboot(name: str) -> None:
    on_server(name, "touch /run/pu-before-reboot")
    norex("lab", "ssh", name, "--", "systemctl reboot", check=False, timeout=60)
    probe = "if test -e /run/pu-before-reboot; then echo old; else systemctl is-system-running; fi"
    wait_for(name, probe, ("running", "degraded"))


def test_nothing_of_the_first_boot_is_left_on_disk(server):
    upper = disk(server)
    assert on_server(server, "test -d /var/log/journal && echo persistent").strip() == "persistent"
    plant_first_boot(server)
    # The starting point is real: the marker is on the disk, in the journal and in every planted file.
    before = holding(upper, MARKER)
    assert any(p.startswith("var/log/journal/") for p in before), before
    assert set(PLANTED) <= set(before)
    assert present(upper, SYMLINK)

    run_bootcmd(server)
    reboot(server)

    # Running again: the journal works, in RAM only; cloud-init would not run a second time.
    assert on_server(server, "test -e /var/log/journal && echo present; true").strip() == ""
    on_server(server, f"logger -t pu-test '{LATER}'; journalctl --sync")
    assert LATER in on_server(server, "journalctl -o cat -t pu-test")
    assert "/run/log/journal/" in on_server(server, "journalctl --header | grep 'File path'")
    assert on_server(server, "test -f /etc/cloud/cloud-init.disabled && echo disabled").strip() == "disabled"

    norex("lab", "stop", server)
    upper = disk(server)
    assert [rel for rel in GONE if present(upper, rel)] == []
    assert holding(upper, MARKER) == []
    assert holding(upper, LATER) == []
