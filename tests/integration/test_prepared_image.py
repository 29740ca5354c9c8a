"""The lab's prepared image (norex/lab/prepared.py), the counterpart of production's prepared snapshot, in each state
a server made from it goes through.

The image itself (what a powered-off server's disk is made of): nothing of its builder (machine id, SSH host keys, the
lab's key, its name, its network file, any log file, any private key), every role's package installed and no security
update pending. A server made from it, before any converge: the journal is volatile from the first boot. Its first
converge installs and purges nothing (dpkg's database is unchanged) and the audit passes; a second changes nothing;
what holds in every state of a converged server (test_converged_server.check_server) holds after each converge and
after a reboot; powered off, its own disk holds no log, journal or temporary file.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from norex.agent.ca import AgentCA
from norex.lab.prepared import BUILDER, prepared_dir
from tests.conftest import (
    build_blocklist,
    converge,
    ensure_absent,
    norex,
    on_server,
    ops_variables,
    reboot,
    recap,
    wg_keypair,
)
from tests.integration.test_converged_server import check_server

pytestmark = pytest.mark.lab

NAME = "t-prepared"
# Every role's packages (their vars/main.yml) and base's own.
ROLE_PACKAGES = (
    *("unbound", "dns-root-data", "nftables", "wireguard-tools", "wireguard-go"),
    *("conntrack", "openssl", "unattended-upgrades"),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[dict]:
    ensure_absent(NAME)
    work = tmp_path_factory.mktemp("prepared")
    record = json.loads(norex("lab", "up", NAME, "--image", "prepared", "--json").stdout)
    ca = AgentCA(work / "agent-ca").ensure()
    variables = ops_variables(ca, wg_keypair()[1], build_blocklist(work, "prepared", ["ads.example.test"]))
    try:
        yield {"record": record, "work": work, "vars": variables}
    finally:
        ensure_absent(NAME)


def image() -> Path:
    folder = prepared_dir()
    assert (folder / ".norex-image.json").is_file(), f"no prepared image at {folder}"
    return folder


def test_the_image_holds_nothing_of_its_builder(server) -> None:
    root = image()
    assert (root / "etc/machine-id").read_text() == ""
    assert not list((root / "etc/ssh").glob("ssh_host_*"))
    assert not (root / "root/.ssh").exists()
    assert not (root / "etc/hostname").exists()
    assert not (root / "etc/systemd/network/10-host0.network").exists()
    assert not (root / "var/log/journal").exists()
    assert [str(p) for p in (root / "var/log").rglob("*") if not p.is_dir()] == []
    assert not list((root / "var/cache/apt/archives").glob("*.deb"))
    assert not (root / "var/lib/systemd/timers").exists()
    # No key of any role (WireGuard, the agent) and no other private key; not the builder's name anywhere.
    assert not list((root / "etc/wireguard").iterdir())
    assert not (root / "etc/norex-agent").exists()
    for needle in ("PRIVATE KEY", BUILDER):
        found = subprocess.run(
            ["grep", "-rlaF", "-D", "skip", needle, str(root / "etc"), str(root / "var"), str(root / "root")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert found.returncode == 1 and not found.stderr, (needle, found.stdout, found.stderr)


def test_the_image_has_every_package_and_nothing_pending(server) -> None:
    root = image()
    status = subprocess.run(
        ["chroot", str(root), "dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\n", *ROLE_PACKAGES],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert sorted(line.split()[0] for line in status.splitlines() if line.split()[1] == "ii") == sorted(ROLE_PACKAGES)
    # apt's simulation from the lists the image was built with: no update from the security suite left.
    simulated = on_server(NAME, "apt-get -s -o Debug::NoLocking=1 dist-upgrade")
    assert "Debian-Security" not in simulated, simulated


def test_a_server_from_it_keeps_no_journal_on_disk_before_any_converge(server) -> None:
    assert on_server(NAME, "test -e /var/log/journal && echo present || echo absent").strip() == "absent"
    header = on_server(NAME, "journalctl --header --no-pager | grep -m1 'File path'")
    assert "/run/log/journal/" in header, header
    assert on_server(NAME, "cat /etc/hostname").strip() == NAME


def test_first_converge_installs_nothing_and_passes_the_audit_then_the_second_changes_nothing(server) -> None:
    dpkg_status = "sha256sum /var/lib/dpkg/status"
    before = on_server(NAME, dpkg_status)
    first = converge(NAME, server["vars"], server["work"])
    assert first.returncode == 0, first.stdout[-5000:]
    assert on_server(NAME, dpkg_status) == before, "the first converge changed dpkg's database"
    assert recap(first.stdout, NAME)["changed"] > 0  # the roles' own work still happens

    proc = norex("audit", NAME, "--json", check=False)
    (report,) = json.loads(proc.stdout)
    failed = {c["id"]: c["reason"] for c in report["checks"] if c["verdict"] == "fail"}
    assert proc.returncode == 0 and not failed, failed
    assert report["summary"]["pass"] >= 25

    check_server(NAME)

    second = converge(NAME, server["vars"], server["work"])
    assert second.returncode == 0, second.stdout[-5000:]
    assert recap(second.stdout, NAME)["changed"] == 0, second.stdout[-5000:]
    check_server(NAME)


def test_after_a_reboot_and_powered_off(server) -> None:
    reboot(NAME)
    check_server(NAME)
    assert on_server(NAME, "test -e /var/log/journal && echo present || echo absent").strip() == "absent"
    norex("lab", "stop", NAME)
    disk = Path(norex("lab", "disk", NAME).stdout.strip())
    kept = [str(p.relative_to(disk)) for folder in ("var/log", "tmp", "var/tmp") for p in (disk / folder).rglob("*")]
    assert kept == [], kept
