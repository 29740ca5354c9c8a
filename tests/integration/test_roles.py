"""The roles on a real lab server: nothing recorded survives, no capture, a working tunnel, safe inputs."""

from __future__ import annotations

import ipaddress
import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import converge, ensure_absent, norex, on_server, reboot, recap, wg_keypair

pytestmark = pytest.mark.lab

SERVER = "t-vpn"
OPS = ["198.18.0.1/32", "fd4e:6f72:6578::1/128", "198.18.2.0/24"]  # the lab host, and lab devices for the SSH test
SUBNET4, SUBNET6 = "10.66.0.0/24", "fd9a:3c41:7be2::/64"


def peer(public_key: str, n: int) -> dict:
    return {"public_key": public_key, "addresses": [f"10.66.0.{n}/32", f"fd9a:3c41:7be2::{n:x}/128"]}


def client_config(private_key: str, n: int, server_public: str, endpoint: str) -> str:
    return (
        f"[Interface]\nPrivateKey = {private_key}\nAddress = 10.66.0.{n}/32, fd9a:3c41:7be2::{n:x}/128\n\n"
        f"[Peer]\nPublicKey = {server_public}\nAllowedIPs = 0.0.0.0/0, ::/0\nEndpoint = {endpoint}:51820\n"
        "PersistentKeepalive = 25\n"
    )


@pytest.fixture(scope="module")
def vpn(tmp_path_factory):
    """A lab server converged with one peer; the phone that owns it; removed afterwards."""
    work = tmp_path_factory.mktemp("vpn")
    ensure_absent(SERVER)
    for device in ("t-phone1", "t-phone2", "t-ops"):
        norex("lab", "device", "down", device, check=False)
    server = json.loads(norex("lab", "up", SERVER, "--json").stdout)
    phone1, phone2 = wg_keypair(), wg_keypair()
    base_vars = {"norex_ops_cidrs": OPS, "wireguard_peers": [peer(phone1[1], 2)]}
    started = time.monotonic()
    first = converge(SERVER, base_vars, work)
    assert first.returncode == 0, first.stdout[-5000:]
    state = {
        "server": server,
        "work": work,
        "vars": base_vars,
        "phone1": phone1,
        "phone2": phone2,
        "first_seconds": time.monotonic() - started,
        "first": first.stdout,
    }
    try:
        yield state
    finally:
        for device in ("t-phone1", "t-phone2", "t-ops"):
            norex("lab", "device", "down", device, check=False)
        ensure_absent(SERVER)


def test_second_converge_changes_nothing_and_check_mode_works(vpn):
    assert recap(vpn["first"], SERVER)["failed"] == 0
    again = converge(SERVER, vpn["vars"], vpn["work"])
    assert again.returncode == 0, again.stdout[-3000:]
    assert recap(again.stdout, SERVER)["changed"] == 0, again.stdout[-3000:]
    checked = converge(SERVER, vpn["vars"], vpn["work"], check=True)
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert recap(checked.stdout, SERVER)["changed"] == 0


# What `--tags journald` may run besides the journald tasks: the input checks, preflight, Ansible's own argument
# checks and fact gathering, all tagged always.
JOURNALD_TASKS = {
    "Write the journald drop-in",
    "Mask journald's audit socket",
    "Restart journald now if its settings changed",
    "Remove the persistent journal",
}


def test_one_tag_runs_only_its_concern_and_changes_nothing(vpn, monkeypatch):
    monkeypatch.setenv("ANSIBLE_RUN_TAGS", "journald")  # what --tags journald sets
    result = converge(SERVER, vpn["vars"], vpn["work"])
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap(result.stdout, SERVER)["changed"] == 0, result.stdout[-3000:]
    tasks = re.findall(r"^TASK \[(.+)\] \*+$", result.stdout, re.MULTILINE)
    ran = {name for task in tasks if (name := task.removeprefix("norex.vpn.no_logs : ")) != task}
    assert ran - {"Validating arguments against arg spec 'main' - Design logging out of a NorexVPN server."} == (
        JOURNALD_TASKS
    )
    others = [task for task in tasks if not task.startswith(("norex.vpn.no_logs : ", "norex.vpn.preflight : "))]
    assert others and all(
        task == "Gathering Facts"
        or task.startswith("Check the ")  # the input play's includes
        or re.match(r"norex\.vpn\.\w+ : (Validating arguments against arg spec|Check the \w+ inputs)", task)
        for task in others
    ), others
    assert any(task == "norex.vpn.preflight : Assert Ansible connects as root" for task in tasks)


def test_packet_capture_cannot_happen(vpn):
    install = norex("lab", "ssh", SERVER, "--", "apt-get", "install", "-y", "tcpdump", check=False)
    assert install.returncode != 0
    assert on_server(SERVER, "command -v tcpdump", check=False) == ""
    ruleset = on_server(SERVER, "nft list ruleset")
    assert "policy drop" in ruleset
    assert not re.search(r"\b(log|nflog|queue)\b", ruleset), ruleset
    packet = on_server(SERVER, "cat /proc/net/packet").strip().splitlines()
    assert len(packet) == 1 and packet[0].startswith("sk"), packet  # the header only: no AF_PACKET socket


def test_ssh_only_from_the_ops_network(vpn, two_servers):
    server = vpn["server"]["address"]
    probe = f"timeout 3 bash -c '</dev/tcp/{server}/22' && echo open || echo closed"
    assert on_server("t-alpha", probe).strip() == "closed"  # another lab server is not ops
    assert on_server(SERVER, "true") == ""  # the lab host is


def _sha(paths: list[str]) -> str:
    return on_server(SERVER, "sha256sum " + " ".join(paths))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"wireguard_peers": [{"public_key": "not-a-key", "addresses": ["10.66.0.9/32"]}]}, "key"),
        ({"wireguard_peers": "peer-list-as-a-string"}, "wireguard_peers"),
        ({"wireguard_peers": [peer("0" * 43 + "=", 9) | {"addresses": ["10.67.0.9/32"]}]}, "10.67.0.9"),
        ("duplicate-address", "10.66.0.2"),
        ("duplicate-key", "duplicate"),
        ({"norex_ops_cidrs": ["198.18.0.1/33"]}, "198.18.0.1/33"),
        ({"norex_ops_cidrs": []}, "ssh"),
        ({"firewall_conntrack_timeouts": {"tcp_timeout_established": 432000}}, "432000 is not a number of seconds"),
    ],
)
def test_bad_input_fails_before_anything_changes(vpn, change, message):
    first_key = vpn["vars"]["wireguard_peers"][0]["public_key"]
    other_key = vpn["phone2"][1]
    if change == "duplicate-address":
        change = {"wireguard_peers": [peer(first_key, 2), peer(other_key, 2)]}
    elif change == "duplicate-key":
        change = {"wireguard_peers": [peer(first_key, 2), peer(first_key, 3)]}
    watched = ["/etc/wireguard/wg0.conf", "/etc/nftables.conf", "/etc/ssh/sshd_config.d/00-norex.conf"]
    before = _sha(watched)
    result = converge(SERVER, vpn["vars"] | change, vpn["work"])
    assert result.returncode != 0
    counters = recap(result.stdout, SERVER)
    assert counters["changed"] == 0 and counters["failed"] == 1
    assert message.lower() in result.stdout.lower(), result.stdout[-3000:]
    assert "Converge VPN servers" not in result.stdout  # stopped in the input check, before the servers
    assert _sha(watched) == before


def test_tunnel_reaches_the_internet_and_a_new_peer_drops_nobody(vpn):
    server = vpn["server"]["address"]
    server_public = on_server(SERVER, "wg show wg0 public-key").strip()
    config = vpn["work"] / "phone1.conf"
    config.write_text(client_config(vpn["phone1"][0], 2, server_public, server))
    norex("lab", "device", "up", "t-phone1", "--config", str(config))
    seen = norex("lab", "device", "exec", "t-phone1", "--", "curl", "-sS", "--max-time", "10", "http://198.18.0.80/ip")
    assert seen.stdout.strip() == server  # the web site sees the server (masquerade), not the phone
    seen6 = norex("lab", "device", "exec", "t-phone1", "--", "curl", "-sS", "-g", "http://[fd4e:6f72:6578::80]/ip")
    assert ipaddress.ip_address(seen6.stdout.strip()) == ipaddress.ip_address(
        on_server(SERVER, "ip -6 -o addr show dev host0 scope global").split()[3].split("/")[0]
    )
    handshakes = dict(line.split() for line in on_server(SERVER, "wg show wg0 latest-handshakes").splitlines())
    assert int(handshakes[vpn["phone1"][1]]) > 0

    # Add a second peer while the first pings through the tunnel: wg syncconf must not drop it.
    ping = subprocess.Popen(
        ["ip", "netns", "exec", "norexlab-dev-t-phone1", "ping", "-i", "0.2", "10.66.0.1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(1)
    two = vpn["vars"] | {"wireguard_peers": [peer(vpn["phone1"][1], 2), peer(vpn["phone2"][1], 3)]}
    result = converge(SERVER, two, vpn["work"])
    time.sleep(1)
    ping.send_signal(signal.SIGINT)
    out, _ = ping.communicate(timeout=10)
    assert result.returncode == 0, result.stdout[-3000:]
    stats = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert stats, out
    sent, received = int(stats.group(1)), int(stats.group(2))
    assert sent >= 10 and received == sent, out
    peers = on_server(SERVER, "wg show wg0 peers").split()
    assert sorted(peers) == sorted([vpn["phone1"][1], vpn["phone2"][1]])
    vpn["vars"] = two

    # The second phone comes up; the two phones cannot reach each other.
    config2 = vpn["work"] / "phone2.conf"
    config2.write_text(client_config(vpn["phone2"][0], 3, server_public, server))
    norex("lab", "device", "up", "t-phone2", "--config", str(config2))
    norex("lab", "device", "exec", "t-phone2", "--", "ping", "-c", "1", "-W", "3", "10.66.0.1")
    cross = norex("lab", "device", "exec", "t-phone1", "--", "ping", "-c", "2", "-W", "2", "10.66.0.3", check=False)
    assert cross.returncode != 0, "client-to-client traffic must be dropped"


def _scan(roots: list[Path], needles: list[bytes], binary: bytes | None = None) -> list[str]:
    """Files under roots holding any needle; the binary form only in utmp-style records (wtmp, lastlog...)."""
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file() or path.is_symlink():
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            hits = [n for n in needles if n in data]
            if binary and re.search(r"(utmp|wtmp|btmp|lastlog)", path.name) and binary in data:
                hits.append(binary)
            found += [f"{path}: {h!r}" for h in hits]
    return found


def test_nothing_of_the_session_survives_a_reboot(vpn):
    marker = f"norex-marker-{time.time_ns()}"
    ops = json.loads(norex("lab", "device", "up", "t-ops", "--json").stdout)
    client = ops["address"]
    on_server(SERVER, f"logger {marker}-logger; echo {marker}-cat | systemd-cat -t norex-test")
    key = vpn["server"]["ssh_key"]
    known = Path(key).parent / "known_hosts"
    login = norex(
        "lab",
        "device",
        "exec",
        "t-ops",
        "--",
        "ssh",
        "-i",
        key,
        "-o",
        f"UserKnownHostsFile={known}",
        "-o",
        "BatchMode=yes",
        f"root@{vpn['server']['address']}",
        f'echo {marker}-session "$SSH_CLIENT"',
    )
    # The server knew the client's address during the session.
    assert login.stdout.split()[:2] == [f"{marker}-session", client]
    # Control: the running server did see all of it (in memory only).
    assert on_server(SERVER, f"journalctl --no-pager | grep -c {marker}").strip() != "0"

    reboot(SERVER)
    assert "tmpfs" in on_server(SERVER, "findmnt -n -o FSTYPE /var/log")
    assert on_server(SERVER, f"journalctl --no-pager | grep -c {marker}", check=False).strip() == "0"
    norex("lab", "stop", SERVER)
    try:
        disk = Path(norex("lab", "disk", SERVER).stdout.strip())
        lower = Path((disk.parent / "lower").read_text().strip())
        assert _scan([disk], [b"198.18.2.0/24"])  # control: the scan does find the server's own writes
        needles = [marker.encode(), client.encode()]
        assert _scan([disk, lower], needles, ipaddress.ip_address(client).packed) == []
    finally:
        norex("lab", "start", SERVER)
    assert on_server(SERVER, "wg show wg0 peers").split()  # back with its tunnel after a power cycle
