"""Checks that a converged lab server is the platform the roles expect.

Run by `molecule verify` through testinfra's ansible backend, using the
inventory Molecule generates from create.yml's instance config.
"""

from __future__ import annotations

import os
import subprocess

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts(
    "vpn_servers"
)

SSH_PORT = 22
LAB_INTERNET = "norexlab-inet"  # the lab's public internet (norex.lab.plan.INET_NS)
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


# ---- the no-logs promise on the converged server ------------------------------------------------


def test_journal_is_volatile_and_nothing_persists_it(host):
    conf = host.run("systemd-analyze cat-config systemd/journald.conf").stdout
    assert "Storage=volatile" in conf or "Storage=none" in conf
    assert not host.file("/var/log/journal").exists
    assert host.run("systemctl is-enabled systemd-journald-audit.socket").stdout.strip() == "masked"


def test_var_log_and_tmp_are_memory_only(host):
    for path in ("/var/log", "/tmp", "/var/tmp"):
        assert host.run(f"findmnt -n -o FSTYPE {path}").stdout.strip() == "tmpfs", path


def test_no_syslog_audit_or_accounting(host):
    for package in ("rsyslog", "syslog-ng", "auditd", "acct", "sysstat", "snoopy", "tcpdump", "tshark"):
        assert not host.package(package).is_installed, package


def test_capture_tools_are_pinned_out(host):
    policy = host.run("apt-cache policy tcpdump").stdout
    assert "-1" in policy or "Candidate: (none)" in policy


def test_firewall_drops_by_default_and_never_logs(host):
    ruleset = host.run("nft list ruleset").stdout
    assert "policy drop" in ruleset
    for word in (" log ", " log\n", "nflog", " queue"):
        assert word not in ruleset


def test_ssh_takes_keys_only(host):
    effective = host.run("sshd -T").stdout.lower()
    assert "passwordauthentication no" in effective
    assert "kbdinteractiveauthentication no" in effective


def test_wireguard_is_up_with_the_given_peers(host):
    wg = host.run("wg show wg0 peers")
    assert wg.rc == 0
    assert len(wg.stdout.split()) == 2
    addresses = host.run("ip -o addr show dev wg0").stdout
    assert "10.66.0.1/24" in addresses
    assert "fd9a:3c41:7be2::1/64" in addresses


def test_private_key_is_root_only(host):
    keys = host.run("find /etc/wireguard -name '*.key'").stdout.split()
    assert keys
    for key in keys:
        f = host.file(key)
        assert f.user == "root" and f.mode & 0o077 == 0


def test_resolver_answers_only_on_the_tunnel_and_loopback(host):
    assert host.service("unbound").is_running
    bound = {
        line.split()[3].rsplit(":", 1)[0].strip("[]") for line in host.check_output("ss -Hlnu sport = :53").splitlines()
    }
    assert bound == {"10.66.0.1", "fd9a:3c41:7be2::1", "127.0.0.1", "::1"}


def test_resolver_records_nothing(host):
    for option, value in [
        ("verbosity", "0"),
        ("log-queries", "no"),
        ("log-replies", "no"),
        ("qname-minimisation", "yes"),
    ]:
        assert host.check_output(f"unbound-checkconf -o {option}") == value, option
    tally = host.run("/usr/local/sbin/norex-dns-tally")
    assert tally.rc == 0 and '"blocked"' in tally.stdout


def test_the_agent_runs_hardened_on_the_public_address_only(host):
    assert host.service("norex-agent").is_running and host.service("norex-agent").is_enabled
    listening = host.check_output("ss -Hltn sport = :8443").splitlines()
    bound = {line.split()[3].rsplit(":", 1)[0].strip("[]") for line in listening}
    assert bound and not bound & {"0.0.0.0", "::", "10.66.0.1", "fd9a:3c41:7be2::1", "127.0.0.1"}  # noqa: S104
    report = host.check_output("systemd-analyze security --no-pager norex-agent.service")
    overall = [line for line in report.splitlines() if "Overall exposure level" in line]
    print(overall[0] if overall else report[-500:])
    assert overall and float(overall[0].split(":")[1].split()[0]) <= 2.0
    assert host.file("/etc/norex-agent/agent.key").mode == 0o600


def _tcp_connects(address: str, port: int, netns: str | None = None) -> bool:
    """Whether a TCP connection from this machine (the lab host, or one of its lab namespaces) is accepted."""
    script = f"exec 3<>/dev/tcp/{address}/{port}"
    prefix = ["ip", "netns", "exec", netns] if netns else []
    proc = subprocess.run([*prefix, "timeout", "5", "bash", "-c", script], capture_output=True, check=False)
    return proc.returncode == 0


def test_the_agent_port_is_open_to_the_control_plane_only(host):
    listening = host.check_output("ss -Hltn sport = :8443").splitlines()
    address = sorted(line.split()[3].rsplit(":", 1)[0] for line in listening if "[" not in line)[0]
    # The lab host is the control plane (norex_control_plane_cidrs); the lab internet's namespace is not,
    # and it does reach the server (a ping gets through), so a refused connection is the firewall's doing.
    assert _tcp_connects(address, 8443)
    ping = ["ip", "netns", "exec", LAB_INTERNET, "ping", "-c", "1", "-W", "2", address]
    assert subprocess.run(ping, capture_output=True, check=False).returncode == 0
    assert not _tcp_connects(address, 8443, LAB_INTERNET)
