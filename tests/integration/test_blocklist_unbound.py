"""The compiler's output is accepted by the real Unbound of a Debian 12 server (lab)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ensure_absent, norex, on_server

pytestmark = pytest.mark.lab

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "blocklists"


@pytest.fixture(scope="module")
def unbound_server():
    ensure_absent("t-unbound")
    norex("lab", "up", "t-unbound")
    on_server(
        "t-unbound",
        "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive "
        "apt-get install -y -q --no-install-recommends unbound >/dev/null",
    )
    yield "t-unbound"
    ensure_absent("t-unbound")


@pytest.mark.parametrize("zone_type", ["always_nxdomain", "always_refuse", "always_null"])
def test_unbound_checkconf_accepts_the_output(unbound_server, tmp_path, zone_type):
    sources = [
        f"ads={FIXTURES / 'hosts.txt'}",
        f"trackers={FIXTURES / 'adblock.txt'}",
        f"malware={FIXTURES / 'rpz.txt'}",
        f"ads={FIXTURES / 'domains.txt'}",
    ]
    out = tmp_path / "out"
    manifest = json.loads(
        norex(
            "blocklist",
            "build",
            *sources,
            "--allow",
            str(FIXTURES / "allow.txt"),
            "--zone-type",
            zone_type,
            "--out",
            str(out),
            "--json",
        ).stdout
    )
    assert manifest["total"] > 0 and manifest["exceptions"] > 0
    norex("lab", "ssh", unbound_server, "--", "cat > /root/blocklist.conf", input=(out / "blocklist.conf").read_text())
    conf = 'server:\n  chroot: ""\n  directory: "/root"\ninclude: "/root/blocklist.conf"\n'
    result = norex(
        "lab",
        "ssh",
        unbound_server,
        "--",
        f"printf '{conf}' > /root/t.conf && unbound-checkconf /root/t.conf",
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no errors" in result.stdout
