"""The lab on real servers: lifecycle, isolation, clean removal, bad input (needs root)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from norex.lab import host_tools
from tests.conftest import NOREX, ensure_absent, lab_names, norex, on_server, reboot

pytestmark = pytest.mark.lab


def test_up_prints_what_ansible_needs(two_servers):
    alpha = two_servers["t-alpha"]
    assert set(alpha) == {"name", "address", "ssh_port", "ssh_user", "ssh_key"}
    assert alpha["name"] == "t-alpha"
    assert alpha["address"].startswith("198.18.1.")
    assert alpha["ssh_user"] == "root"
    assert alpha["ssh_port"] == 22
    assert Path(alpha["ssh_key"]).is_file()
    assert two_servers["t-alpha"]["address"] != two_servers["t-beta"]["address"]


def test_the_host_holds_a_full_lab(two_servers):
    """Every server's systemd takes inotify instances under the host's root: the default 128 held 13 servers."""
    assert int(Path("/proc/sys/fs/inotify/max_user_instances").read_text()) >= 8192


def test_servers_are_debian_12_with_systemd(two_servers):
    for name in two_servers:
        assert on_server(name, "systemctl is-system-running").strip() in ("running", "degraded")
        assert "VERSION_CODENAME=bookworm" in on_server(name, "cat /etc/os-release")
        assert on_server(name, "systemd-detect-virt").strip() == "systemd-nspawn"
        assert on_server(name, "hostname").strip() == name
        assert on_server(name, "readlink /proc/1/exe").strip().endswith("/systemd")


def test_servers_see_nothing_of_each_other(two_servers):
    alpha, beta = two_servers["t-alpha"], two_servers["t-beta"]
    # Filesystem: a file written on one is on its own disk only.
    on_server("t-alpha", "echo alpha-only > /root/isolation-marker")
    assert norex("lab", "ssh", "t-beta", "--", "test", "-e", "/root/isolation-marker", check=False).returncode == 1
    assert (Path(norex("lab", "disk", "t-alpha").stdout.strip()) / "root/isolation-marker").is_file()
    assert not (Path(norex("lab", "disk", "t-beta").stdout.strip()) / "root/isolation-marker").exists()
    # Processes: a distinctive process on alpha is not visible on beta.
    on_server("t-alpha", "systemd-run --unit=isolation-marker sleep 4242")
    find = (
        'python3 -c \'import glob\nn=0\nfor p in glob.glob("/proc/[0-9]*/cmdline"):\n'
        ' try: n += open(p, "rb").read() == b"/usr/bin/sleep\\x004242\\x00"\n'
        " except OSError: pass\nprint(n)'"
    )
    assert int(on_server("t-alpha", find)) >= 1
    assert int(on_server("t-beta", find)) == 0
    # Network: each has its own namespace and addresses.
    ns_alpha = on_server("t-alpha", "readlink /proc/1/ns/net").strip()
    ns_beta = on_server("t-beta", "readlink /proc/1/ns/net").strip()
    assert ns_alpha != ns_beta != os.readlink("/proc/self/ns/net")
    addrs_alpha = on_server("t-alpha", "ip -o addr show")
    assert alpha["address"] in addrs_alpha and beta["address"] not in addrs_alpha
    assert "host0" in addrs_alpha
    # PID namespaces: both see their own systemd as PID 1.
    assert on_server("t-alpha", "readlink /proc/1/ns/pid") != on_server("t-beta", "readlink /proc/1/ns/pid")
    on_server("t-alpha", "systemctl stop isolation-marker")


def test_stop_keeps_disk_and_start_boots_it_again(two_servers):
    on_server("t-beta", "echo kept > /root/kept-across-stop")
    norex("lab", "stop", "t-beta")
    state = {s["name"]: s["state"] for s in json.loads(norex("lab", "list", "--json").stdout)}
    assert state["t-beta"] == "stopped"
    assert norex("lab", "ssh", "t-beta", "--", "true", check=False).returncode != 0
    disk = Path(norex("lab", "disk", "t-beta").stdout.strip())
    assert (disk / "root/kept-across-stop").read_text() == "kept\n"  # offline inspection of a powered-off server
    norex("lab", "start", "t-beta")
    assert on_server("t-beta", "cat /root/kept-across-stop") == "kept\n"


def _boot_id(name: str) -> str:
    return on_server(name, "cat /proc/sys/kernel/random/boot_id").strip()


def test_restart_and_reboot_from_inside(two_servers):
    first = _boot_id("t-beta")
    norex("lab", "restart", "t-beta")
    second = _boot_id("t-beta")
    assert second != first
    # A reboot asked for inside the server brings it back, as a real machine comes back.
    assert reboot("t-beta") != second


def test_inventory_reaches_every_server_with_strict_host_keys(two_servers, tmp_path):
    text = norex("lab", "inventory").stdout
    inv = yaml.safe_load(text)
    hosts = inv["all"]["children"]["vpn_servers"]["hosts"]
    assert {"t-alpha", "t-beta"} <= set(hosts)
    assert hosts["t-alpha"]["ansible_host"] == two_servers["t-alpha"]["address"]
    lab_vars = inv["all"]["vars"]
    assert lab_vars["norex_ops_cidrs"][0] == "198.18.0.1/32"
    assert "a.root-servers.test." in lab_vars["resolver_root_hints"]
    assert re.match(r"^\. \d+ IN DS \d+ 13 2 [0-9a-f]{64}$", lab_vars["resolver_trust_anchors"][0])
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    ansible = Path(NOREX).with_name("ansible")
    proc = subprocess.run(
        [str(ansible), "-i", str(path), "t-alpha:t-beta", "-m", "ansible.builtin.ping"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "True"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == 2


def _traces(name: str) -> list[str]:
    """Everything of a server left on the host: its folder, mounts, processes, veth."""
    found = []
    folder = f"/var/lib/norex/lab/servers/{name}"
    if Path(folder).exists():
        found.append(folder)
    found += [ln for ln in Path("/proc/self/mountinfo").read_text().splitlines() if folder in ln]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if folder in cmd or f"norex.lab.supervisor {name}" in cmd:
            found.append(f"process {pid}: {cmd}")
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    found += [ln for ln in links.splitlines() if f"vb-{name}" in ln]
    return found


def test_down_removes_every_trace():
    ensure_absent("t-gone")
    server = json.loads(norex("lab", "up", "t-gone", "--json").stdout)
    assert _traces("t-gone")
    norex("lab", "down", "t-gone")
    assert _traces("t-gone") == []
    assert "t-gone" not in lab_names()
    assert subprocess.run(["ping", "-c1", "-W1", server["address"]], capture_output=True, check=False).returncode != 0


def test_interrupted_up_is_cleaned_by_down():
    ensure_absent("t-cut")
    proc = subprocess.Popen([NOREX, "lab", "up", "t-cut"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.6)  # mid-way: after the record is made, before the server answers
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if "t-cut" in lab_names() or Path("/var/lib/norex/lab/servers/t-cut").exists():
        norex("lab", "down", "t-cut")
    assert _traces("t-cut") == []


def _one_line_error(proc: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("norex: error: ") and words in lines[0], lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("bad", ["Bad_Name", "-x", "a" * 40, "x/../../etc", "ends-", "", "two words"])
def test_invalid_names_are_refused(bad):
    _one_line_error(norex("lab", "up", "--", bad, check=False), 2, "invalid lab server name")
    _one_line_error(norex("lab", "device", "up", "--", bad, check=False), 2, "invalid lab device name")


def test_usage_errors_are_one_line():
    _one_line_error(norex("lab", "up", "-x", check=False), 2, "No such option")
    _one_line_error(norex("lab", "up", check=False), 2, "Missing argument")
    _one_line_error(norex("lab", "frobnicate", check=False), 2, "No such command")


def test_up_of_existing_and_down_of_missing(two_servers):
    _one_line_error(norex("lab", "up", "t-alpha", check=False), 4, "already exists")
    _one_line_error(norex("lab", "down", "t-never-made", check=False), 3, "no lab server named")
    _one_line_error(norex("lab", "ssh", "t-never-made", check=False), 3, "no lab server named")
    _one_line_error(norex("lab", "device", "exec", "t-no-device", "true", check=False), 3, "no lab device")


def test_without_root_or_prerequisite(tmp_path):
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", NOREX, "lab", "up", "t-x"]
    proc = subprocess.run(nobody, capture_output=True, text=True, check=False)
    _one_line_error(proc, 5, "needs root")
    # A PATH with every tool but debootstrap.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in (binary for _, binary, _ in host_tools.TOOLS if binary != "debootstrap"):
        real = subprocess.run(["which", tool], capture_output=True, text=True, check=True).stdout.strip()
        (bindir / tool).symlink_to(real)
    proc = norex("lab", "up", "t-x", check=False, env={**os.environ, "PATH": str(bindir)})
    _one_line_error(proc, 5, "apt-get install -y --no-install-recommends debootstrap")
    assert "t-x" not in lab_names()


def test_doctor_reports_all_present():
    proc = norex("lab", "doctor", "--json")
    report = json.loads(proc.stdout)
    assert report["ok"] is True and report["install"] is None
    assert {c["name"] for c in report["checks"]} >= {"root", "systemd-nspawn", "debootstrap", "wireguard-go", "nsd"}


def test_a_server_whose_processes_were_killed_starts_again():
    """CI runs right after development work whose processes were killed: such servers must recover."""
    ensure_absent("t-killed")
    norex("lab", "up", "t-killed")
    try:
        on_server("t-killed", "echo survived > /root/killed-marker")
        subprocess.run(["pkill", "-9", "-f", "norex.lab.supervisor t-killed"], check=True)
        time.sleep(0.3)
        state = {s["name"]: s["state"] for s in json.loads(norex("lab", "list", "--json").stdout)}
        assert state["t-killed"] == "stopped"
        norex("lab", "start", "t-killed")
        assert on_server("t-killed", "cat /root/killed-marker") == "survived\n"
        assert on_server("t-killed", "systemctl is-system-running").strip() in ("running", "degraded")
    finally:
        ensure_absent("t-killed")
    assert _traces("t-killed") == []
