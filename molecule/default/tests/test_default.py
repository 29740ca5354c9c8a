"""Checks that a converged lab server is the platform the roles expect.

Run by `molecule verify` through testinfra's ansible backend, using the
inventory Molecule generates from create.yml's instance config.
"""

from __future__ import annotations

import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts(
    "vpn_servers"
)

SSH_PORT = 22
TCP_LISTEN = "0A"  # socket state LISTEN in /proc/net/tcp{,6}


def _listening_tcp_ports(host) -> set[int]:
    """Ports in LISTEN state, read from /proc so no ss/netstat is needed."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        f = host.file(table)
        if not f.exists:
            continue
        for line in f.content_string.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == TCP_LISTEN:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_systemd_is_pid_1(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


def test_system_is_running_or_degraded(host):
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded")


def test_sshd_listens_on_22(host):
    assert host.service("ssh").is_running
    assert SSH_PORT in _listening_tcp_ports(host)


def test_os_is_bookworm(host):
    os_release = dict(
        line.split("=", 1) for line in host.file("/etc/os-release").content_string.splitlines() if "=" in line
    )
    assert os_release["ID"].strip('"') == "debian"
    assert os_release["VERSION_CODENAME"].strip('"') == "bookworm"


def test_runs_in_systemd_nspawn(host):
    assert host.check_output("systemd-detect-virt") == "systemd-nspawn"
