"""The resolver role on a real lab server: blocks, validates, applies a new list live, records nothing."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import pytest

from norex.devices.config import client_config
from tests.conftest import converge, ensure_absent, norex, on_server, recap, wg_keypair

pytestmark = pytest.mark.lab

SERVER = "t-rs-srv"
PHONE = "t-rs-phone"
OPS = ["198.18.0.1/32", "fd4e:6f72:6578::1/128"]
DNS = "10.66.0.1"


def run_play(limit: str, extra_vars: dict, workdir: Path) -> subprocess.CompletedProcess[str]:
    """playbooks/site.yml (which ends with the resolver), through the suite's usual runner."""
    return converge(limit, extra_vars, workdir)


def build_list(workdir: Path, name: str, ads: list[str], allow: list[str]) -> str:
    """A blocklist compiled on the controller, as the control plane does."""
    src = workdir / f"{name}-ads.txt"
    src.write_text("".join(f"{n}\n" for n in ads))
    allowed = workdir / f"{name}-allow.txt"
    allowed.write_text("".join(f"{n}\n" for n in allow))
    out = workdir / name
    norex(
        "blocklist", "build", f"ads={src}", "--allow", str(allowed), "--zone-type", "always_refuse", "--out", str(out)
    )
    return str(out / "blocklist.conf")


def dig(name: str) -> tuple[str, set[str]]:
    """Look a name up from the phone, through the tunnel: (status, header flags)."""
    out = norex("lab", "device", "exec", PHONE, "--", "dig", "+tries=1", "+time=5", f"@{DNS}", name).stdout
    status = out.split("status: ", 1)[1].split(",", 1)[0]
    flags = set(out.split(";; flags: ", 1)[1].split(";", 1)[0].split())
    return status, flags


def tally() -> dict[str, int]:
    return json.loads(on_server(SERVER, "/usr/local/sbin/norex-dns-tally"))


def main_pid() -> str:
    return on_server(SERVER, "systemctl show -p MainPID --value unbound.service").strip()


@pytest.fixture(scope="module")
def resolver(tmp_path_factory):
    """A lab server with the resolver and a first list; a phone using it; both removed afterwards."""
    work = tmp_path_factory.mktemp("resolver")
    ensure_absent(SERVER)
    norex("lab", "device", "down", PHONE, check=False)
    server = json.loads(norex("lab", "up", SERVER, "--json").stdout)
    phone = wg_keypair()
    first_list = build_list(work, "list1", ["ads.example.test", "tracker.example.test"], ["ok.ads.example.test"])
    base_vars = {
        "norex_ops_cidrs": OPS,
        "wireguard_peers": [{"public_key": phone[1], "addresses": ["10.66.0.2/32", "fd9a:3c41:7be2::2/128"]}],
        "resolver_blocklist_file": first_list,
    }
    try:
        started = time.monotonic()
        first = run_play(SERVER, base_vars, work)
        assert first.returncode == 0, first.stdout[-5000:]
        print(f"first converge with the resolver: {time.monotonic() - started:.1f} s")
        server_public = on_server(SERVER, "wg show wg0 public-key").strip()
        config = work / "phone.conf"
        config.write_text(client_config(phone[0], "10.66.0.2", "fd9a:3c41:7be2::2", server_public, server["address"]))
        norex("lab", "device", "up", PHONE, "--config", str(config))
        yield {"server": server, "work": work, "vars": base_vars}
    finally:
        norex("lab", "device", "down", PHONE, check=False)
        ensure_absent(SERVER)


def test_blocks_validates_and_counts_only_blocks(resolver):
    before = tally()
    assert dig("ads.example.test")[0] == "REFUSED"
    assert dig("x.y.tracker.example.test")[0] == "REFUSED"  # a subdomain of a blocked name
    status, flags = dig("www.example.test")
    assert status == "NOERROR" and "ad" in flags  # validated with the lab root's anchor
    assert dig("a.b.c.deep.example.test") == ("NOERROR", {"qr", "rd", "ra", "ad"})
    assert dig("ok.ads.example.test")[0] == "NXDOMAIN"  # allowlisted below a blocked name: resolved, not blocked
    after = tally()
    assert after["blocked"] - before["blocked"] == 2
    assert after["queries"] - before["queries"] == 5
    assert after["since_seconds"] >= before["since_seconds"]


def test_control_socket_is_root_only_and_nothing_is_logged(resolver):
    assert on_server(SERVER, "stat -c '%a %U:%G %F' /run/unbound.ctl").strip() == "600 root:root socket"
    assert "is running" in on_server(SERVER, "unbound-control -s /run/unbound.ctl status")
    for option, value in [("verbosity", "0"), ("log-queries", "no"), ("log-replies", "no"), ("use-syslog", "no")]:
        assert on_server(SERVER, f"unbound-checkconf -o {option}").strip() == value, option
    assert on_server(SERVER, "unbound-checkconf -o dnstap-enable").strip() == "no"
    limits = on_server(SERVER, "grep '^Max core' /proc/$(systemctl show -p MainPID --value unbound)/limits").split()
    assert limits[4:6] == ["0", "0"]


def test_a_new_list_is_applied_without_a_restart(resolver):
    pid = main_pid()
    second = build_list(resolver["work"], "list2", ["ads.example.test", "cdn.example.test"], ["ok.ads.example.test"])
    changed = resolver["vars"] | {"resolver_blocklist_file": second}
    result = run_play(SERVER, changed, resolver["work"])
    assert result.returncode == 0, result.stdout[-5000:]
    assert recap(result.stdout, SERVER)["changed"] == 2  # staged and applied; nothing else
    installed = on_server(SERVER, "sha256sum /var/lib/unbound/norex-blocklist.conf").split()[0]
    assert installed == hashlib.sha256(Path(second).read_bytes()).hexdigest()
    assert main_pid() == pid
    assert dig("tracker.example.test")[0] == "NOERROR"
    assert dig("cdn.example.test")[0] == "REFUSED"
    assert dig("ads.example.test")[0] == "REFUSED"
    resolver["vars"] = changed
    again = run_play(SERVER, changed, resolver["work"])
    assert recap(again.stdout, SERVER)["changed"] == 0, again.stdout[-3000:]


def test_a_broken_list_is_refused_and_the_old_one_kept(resolver):
    pid = main_pid()
    installed = on_server(SERVER, "sha256sum /var/lib/unbound/norex-blocklist.conf")
    bad = "printf 'server:\\nlocal-zone: \"bad..name.\" always_refuse\\n' > /root/bad.conf"
    proc = norex(
        "lab", "ssh", SERVER, "--", f"{bad}; /usr/local/sbin/norex-blocklist-apply /root/bad.conf", check=False
    )
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "old list kept" in proc.stderr
    sneaky = "printf 'server:\\nlogfile: /var/log/q.log\\n' > /root/bad.conf"
    proc = norex(
        "lab", "ssh", SERVER, "--", f"{sneaky}; /usr/local/sbin/norex-blocklist-apply /root/bad.conf", check=False
    )
    assert proc.returncode != 0  # only local-zone lines: a list cannot switch logging on
    on_server(SERVER, "rm -f /root/bad.conf")
    assert on_server(SERVER, "sha256sum /var/lib/unbound/norex-blocklist.conf") == installed
    assert main_pid() == pid
    assert dig("ads.example.test")[0] == "REFUSED"
    assert dig("www.example.test")[0] == "NOERROR"


def scan(disk: Path, needles: list[bytes]) -> dict[bytes, list[str]]:
    """The files under disk (a server's own writable layer) that contain each needle."""
    found: dict[bytes, list[str]] = {needle: [] for needle in needles}
    for path in disk.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                data = path.read_bytes()
            except OSError:
                continue
            for needle, paths in found.items():
                if needle in data:
                    paths.append(str(path))
    return found


def asked(zone: str) -> list[str]:
    """What the lab's DNS server for zone has been asked (its dnstap record), oldest first."""
    return [q["name"] for q in json.loads(norex("lab", "dns-queries", zone, "--json").stdout)]


def ancestors(name: str, below: str) -> set[str]:
    """name and every parent of it that is longer than below ("a.b.example.test." below "test.")."""
    labels = name.rstrip(".").split(".")
    found = {".".join(labels[i:]) + "." for i in range(len(labels))}
    return {n for n in found if n.endswith("." + below) or below == "."} - {below}


def test_root_and_tld_never_see_the_full_name(resolver):
    stamp = time.time_ns()
    deep = f"norex-qmin-{stamp}.a.b.c.deep.example.test."
    lone = f"norex-qmin-{stamp}.sub.nosuch-{stamp}."
    # A cold cache, so the root and the TLD are asked again (not answered from what earlier tests cached).
    on_server(
        SERVER,
        "unbound-control -s /run/unbound.ctl flush_zone . && unbound-control -s /run/unbound.ctl flush_infra all",
    )
    assert dig(deep)[0] == "NXDOMAIN"
    assert dig(lone)[0] == "NXDOMAIN"
    # NSD hands its frames to the collector within about a second: wait for the zone server's record.
    deadline = time.monotonic() + 15
    while deep not in asked("example.test"):
        assert time.monotonic() < deadline, "the lab zone server never saw the lookup (is the observer running?)"
        time.sleep(0.5)
    root, tld = set(asked("root")), set(asked("test"))
    assert f"nosuch-{stamp}." in root  # control: the root was asked, only for the TLD
    assert "example.test." in tld  # control: the TLD was asked, only for the next label
    assert root & (ancestors(deep, "test.") | ancestors(lone, f"nosuch-{stamp}.")) == set()
    assert tld & ancestors(deep, "example.test.") == set()


def test_a_lookup_leaves_no_trace(resolver):
    canary = f"norex-canary-{time.time_ns()}.example.test"
    assert dig(canary)[0] == "NXDOMAIN"
    assert canary not in on_server(SERVER, "journalctl --no-pager -o cat")
    norex("lab", "stop", SERVER)
    try:
        disk = Path(norex("lab", "disk", SERVER).stdout.strip())
        found = scan(disk, [canary.encode(), b"cdn.example.test"])
        assert found[b"cdn.example.test"]  # control: the scan does find the blocklist written on disk
        assert found[canary.encode()] == []
    finally:
        norex("lab", "start", SERVER)
    # Back after a power cycle: Unbound (ip-freebind) listens on the tunnel address and answers.
    deadline = time.monotonic() + 30
    while on_server(SERVER, "systemctl is-active unbound.service", check=False).strip() != "active":
        assert time.monotonic() < deadline, "unbound did not come back"
        time.sleep(0.5)
    # The phone's tunnel makes a new handshake with the rebooted server first.
    deadline = time.monotonic() + 60
    while norex("lab", "device", "exec", PHONE, "--", "ping", "-c1", "-W2", DNS, check=False).returncode != 0:
        assert time.monotonic() < deadline, "the tunnel did not come back"
    assert on_server(SERVER, f"ss -lnu 'sport = :53' src {DNS}").count(DNS) == 1  # bound, thanks to ip-freebind
    assert dig("www.example.test")[0] == "NOERROR"
    assert tally()["blocked"] == 0  # counters live in memory: a restart starts them from zero
    # After the reboot too: nothing in this boot's journal, nothing written since on the disk.
    assert canary not in on_server(SERVER, "journalctl --no-pager -o cat")
    assert scan(disk, [canary.encode()])[canary.encode()] == []
