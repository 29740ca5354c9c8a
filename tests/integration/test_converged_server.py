"""What an outside review of a converged server looks for, right after the first converge (no reboot yet), after
a second converge (which changes nothing) and after a reboot: nothing written to the disk under the folders kept
in memory, a connection table that forgets destinations, no pending security update, no downloaded packages, an
SSH that forwards nothing, no login or su records, network settings that neither redirect nor log, a sandboxed
resolver that cannot write to the disk, and no operator address kept in /run/utmp.

The checks read the server directly (/proc, sysctl, sshd -T, systemd-analyze), never through the role's own tools.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from norex.converge import Peer, run_site, site_variables
from norex.settings import load_settings
from tests.conftest import AGENT_PORT, NOREX, lab_handle, norex, on_server, reboot

pytestmark = pytest.mark.lab

IN_MEMORY = ("/var/log", "/tmp", "/var/tmp")
# Every process's open files and its view of /tmp and /var/tmp: anything on a device that is not a tmpfs.
HOLDERS = r"""
import json, os
points = %r
memory = set()
for line in open("/proc/self/mountinfo"):
    f = line.split()
    if f[f.index("-") + 1] == "tmpfs":
        a, b = f[2].split(":")
        memory.add(os.makedev(int(a), int(b)))
found = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        comm = open(f"/proc/{pid}/comm").read().strip()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            link = f"/proc/{pid}/fd/{fd}"
            try:
                target = os.readlink(link)
                if target.startswith("/") and any(target.startswith(p + "/") for p in points):
                    if os.stat(link).st_dev not in memory:
                        found.append(f"{comm}[{pid}] has {target} open on disk")
            except OSError:
                pass
        stacks = {}
        for line in open(f"/proc/{pid}/mountinfo"):
            f = line.split()
            stacks.setdefault(f[4], []).append((f[0], f[1], f[f.index("-") + 1]))
        for point in points:
            mounts = stacks.get(point, [])
            below = {parent for _, parent, _ in mounts}
            seen = [kind for mount, _, kind in mounts if mount not in below]
            if not seen or seen[0] != "tmpfs":
                found.append(f"{comm}[{pid}] sees {point} on {seen or 'the root file system'}")
    except OSError:
        pass
print(json.dumps(found))
"""
CONNTRACK = {
    "net.netfilter.nf_conntrack_tcp_timeout_established": "1800",
    "net.netfilter.nf_conntrack_udp_timeout_stream": "120",
    "net.netfilter.nf_conntrack_generic_timeout": "120",
    "net.netfilter.nf_conntrack_acct": "0",
    "net.netfilter.nf_conntrack_timestamp": "0",
    "net.netfilter.nf_conntrack_events": "0",
    "net.netfilter.nf_log.2": "NONE",
    "net.netfilter.nf_log.10": "NONE",
}
NETWORK = {
    f"net.{family}.conf.{scope}.{key}": "0"
    for family, keys in (
        ("ipv4", ("send_redirects", "accept_redirects", "accept_source_route", "log_martians")),
        ("ipv6", ("accept_redirects", "accept_source_route")),
    )
    for key in keys
    for scope in ("all", "default", "host0")
}


def holders(server: str) -> list[str]:
    return json.loads(norex("lab", "ssh", server, "--", "python3 -", input=HOLDERS % (IN_MEMORY,)).stdout)


def sysctls(server: str, keys) -> dict[str, str]:
    out = on_server(server, "sysctl " + " ".join(keys)).splitlines()
    return dict(line.split(" = ", 1) for line in out)


def longest_conntrack_timeout(server: str, phone: str) -> int:
    """The timeout the kernel gives a live TCP flow from the phone to the lab web (seconds)."""
    hold = subprocess.Popen(
        [
            NOREX,
            "lab",
            "device",
            "exec",
            phone,
            "--",
            "python3",
            "-c",
            "import socket, time; s = socket.create_connection(('198.18.0.80', 80)); time.sleep(20)",
        ]
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            table = on_server(server, "cat /proc/net/nf_conntrack", check=False)
            flows = [line.split() for line in table.splitlines() if "dport=80 " in line and "ESTABLISHED" in line]
            if flows:
                return max(int(f[4]) for f in flows)
            assert time.monotonic() < deadline, f"no established flow to the lab web:\n{table[-2000:]}"
            time.sleep(0.3)
    finally:
        hold.kill()
        hold.wait()


def check_server(server: str) -> None:
    """What holds in every state of the server."""
    assert holders(server) == []
    assert sysctls(server, CONNTRACK) == CONNTRACK
    assert sysctls(server, NETWORK) == NETWORK
    assert on_server(server, "readlink /run/utmp").strip() == "/dev/null"
    assert on_server(server, "who | wc -l").strip() == "0"  # this very SSH session is not recorded
    assert on_server(server, "systemctl is-active unbound").strip() == "active"
    # The resolver's sandbox: the disk is read-only from inside its mount namespace.
    pid = on_server(server, "systemctl show -p MainPID --value unbound").strip()
    for path in ("/var/lib/unbound/x", "/var/log/x", "/etc/unbound/x"):
        out = on_server(server, f"nsenter -t {pid} -m touch {path} 2>&1; echo rc=$?", check=False)
        assert "Read-only file system" in out, (path, out)


def test_right_after_the_first_converge(converged_server) -> None:
    server = converged_server["name"]
    check_server(server)
    assert longest_conntrack_timeout(server, converged_server["phone"]) <= 1800
    pending = on_server(server, "apt-get --simulate --option Debug::NoLocking=true dist-upgrade")
    assert [line for line in pending.splitlines() if line.startswith("Inst") and "Debian-Security:" in line] == []
    assert on_server(server, "find /var/cache/apt/archives -name '*.deb' | wc -l").strip() == "0"
    sshd = dict(line.split(" ", 1) for line in on_server(server, "sshd -T").splitlines() if " " in line)
    assert {k: sshd[k] for k in ("allowtcpforwarding", "allowagentforwarding", "maxauthtries", "permittunnel")} == {
        "allowtcpforwarding": "no",
        "allowagentforwarding": "no",
        "maxauthtries": "3",
        "permittunnel": "no",
    }
    defs = on_server(server, "grep -E '^(FAILLOG_ENAB|SYSLOG_SU_ENAB|SYSLOG_SG_ENAB)' /etc/login.defs").split()
    assert defs == ["FAILLOG_ENAB", "no", "SYSLOG_SU_ENAB", "no", "SYSLOG_SG_ENAB", "no"]
    exposure = on_server(server, "systemd-analyze security unbound.service | tail -n 1")
    assert float(exposure.split("unbound.service: ")[1].split()[0]) <= 3.0, exposure


# Every file, link and folder the roles' norex.vpn.files steps manage, read from the server: content digest,
# mode, owner, group, link target. Run as one script on the server (no module of ours involved).
ON_DISK = r"""
import grp, hashlib, json, os, pwd, stat, sys
out = {}
for path in PATHS:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        out[path] = {"state": "absent"}
        continue
    entry = {"mode": "%04o" % stat.S_IMODE(st.st_mode), "owner": pwd.getpwuid(st.st_uid).pw_name,
             "group": grp.getgrgid(st.st_gid).gr_name}
    if stat.S_ISLNK(st.st_mode):
        entry = {"state": "link", "src": os.readlink(path)}
    elif stat.S_ISDIR(st.st_mode):
        entry["state"] = "directory"
    else:
        entry["state"] = "file"
        entry["sha256"] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    out[path] = entry
print(json.dumps(out))
"""


def test_a_second_converge_changes_nothing_and_every_managed_file_is_what_was_rendered(converged_server) -> None:
    """A bulk file step must not drift from the templates: what the action plugin rendered (digest, mode, owner)
    is what the server's disk holds, read by a script of its own. The converge is the control plane's."""
    server = converged_server["name"]
    variables = dict(converged_server["vars"])
    peers = [Peer(p["public_key"], *(a.split("/")[0] for a in p["addresses"])) for p in variables["wireguard_peers"]]
    blocklist = Path(variables["resolver_blocklist_file"])
    handle = lab_handle(server)
    # The control plane's settings, with the CA and the port the server's agent was converged with.
    settings = load_settings(
        blocklist_file=blocklist, agent_ca_dir=converged_server["agent_ca"].folder, agent_port=AGENT_PORT
    )
    result = run_site(handle, site_variables(handle, settings, peers))
    assert result.changed == 0
    expected = {entry["path"]: entry for entry in result.managed}
    assert len(expected) >= 40, sorted(expected)  # every role's files, links and folders
    disk = _on_disk(server, list(expected))
    for path, want in expected.items():
        wanted = {k: v for k, v in want.items() if k != "path" and v is not None}
        assert {k: disk[path].get(k) for k in wanted} == wanted, path
    check_server(server)


def _on_disk(server: str, paths: list[str]) -> dict:
    script = f"PATHS = {json.dumps(paths)}\n" + ON_DISK
    return json.loads(norex("lab", "ssh", server, "--", "python3 -", input=script).stdout)


def test_after_a_reboot(converged_server) -> None:
    server = converged_server["name"]
    reboot(server)
    check_server(server)
    # The phone notices the server's new WireGuard session only when its old one times out (about 15 s).
    phone, deadline = converged_server["phone"], time.monotonic() + 90
    while True:
        status = norex(
            "lab", "device", "exec", phone, "--", "dig", "+time=3", "@10.66.0.1", "www.example.test", check=False
        )
        if status.returncode == 0:
            break
        assert time.monotonic() < deadline, "the phone's DNS through the tunnel did not come back after the reboot"
        time.sleep(1)
    assert "status: NOERROR" in status.stdout and " ad" in status.stdout.split(";; flags:")[1].split(";")[0]
    assert longest_conntrack_timeout(server, converged_server["phone"]) <= 1800
