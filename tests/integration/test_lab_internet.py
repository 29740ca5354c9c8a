"""The lab internet: DNS answered from its own root, a web site, an apt cache, devices with tunnels."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from norex.lab import plan
from tests.conftest import norex, on_server

pytestmark = pytest.mark.lab


def dig(*args: str) -> str:
    return subprocess.run(
        ["dig", "+time=2", "+tries=1", *args], capture_output=True, text=True, check=True, timeout=30
    ).stdout


def section(output: str, name: str) -> list[list[str]]:
    """Records of one section of dig's output, as lists of words."""
    rows, inside = [], False
    for line in output.splitlines():
        if line.startswith(";; "):
            inside = line.startswith(f";; {name} SECTION")
            continue
        if inside and line.strip():
            rows.append(line.split())
    return rows


@pytest.fixture(scope="module")
def lab_internet(two_servers):
    """The lab internet is up once any server is; a device on it, removed afterwards."""
    norex("lab", "device", "down", "t-phone", check=False)
    yield json.loads(norex("lab", "device", "up", "t-phone", "--json").stdout)
    norex("lab", "device", "down", "t-phone", check=False)


def test_dns_hierarchy_refers_from_root_to_zone(lab_internet):
    root = dig("+norec", f"@{plan.ROOT_NS4}", "www.example.test", "A")
    assert "status: NOERROR" in root and " aa" not in root.split("flags:")[1].split(";")[0]
    assert ["test.", "3600", "IN", "NS", "ns1.nic.test."] in section(root, "AUTHORITY")
    assert ["ns1.nic.test.", "3600", "IN", "A", plan.TLD_NS4] in section(root, "ADDITIONAL")
    tld = dig("+norec", f"@{plan.TLD_NS4}", "www.example.test", "A")
    assert ["example.test.", "3600", "IN", "NS", "ns1.example.test."] in section(tld, "AUTHORITY")
    zone = dig("+norec", f"@{plan.ZONE_NS6}", "www.example.test", "A")
    assert " aa" in zone.split("flags:")[1].split(";")[0]
    assert ["www.example.test.", "300", "IN", "A", plan.WEB4] in section(zone, "ANSWER")


def test_device_resolves_recursively_from_root_hints_and_validates(lab_internet, tmp_path):
    """drill walks down from the lab root hints and checks DNSSEC with the lab's trust anchor."""
    from norex.lab.dns import build_lab_dns

    dns = build_lab_dns(Path("/var/lib/norex/lab/dns"))
    hints, anchor = tmp_path / "root.hints", tmp_path / "root.anchor"
    hints.write_text(dns.root_hints)
    anchor.write_text(dns.trust_anchor + "\n")
    out = norex(
        "lab",
        "device",
        "exec",
        "t-phone",
        "--",
        "drill",
        "-T",
        "-D",
        "-k",
        str(anchor),
        "-r",
        str(hints),
        "www.example.test",
        "A",
    ).stdout
    lines = [ln.split() for ln in out.splitlines()]
    assert ["[T]", "www.example.test.", "300", "IN", "A", plan.WEB4] in lines, out
    assert not [ln for ln in lines if ln and ln[0] in ("[B]", "[S]", "[U]")], out


def test_web_site_sees_the_device(lab_internet):
    out = norex("lab", "device", "exec", "t-phone", "--", "curl", "-sS", "--max-time", "5", f"http://{plan.WEB4}/ip")
    assert out.stdout.strip() == lab_internet["address"]
    page = norex("lab", "device", "exec", "t-phone", "--", "curl", "-sS", "-g", f"http://[{plan.WEB6}]/").stdout
    assert "www.example.test" in page


def test_nothing_routes_beyond_the_lab(lab_internet):
    route = subprocess.run(
        ["ip", "netns", "exec", plan.INET_NS, "ip", "route", "get", "192.0.2.1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert route.returncode != 0 and "unreachable" in route.stderr.lower()
    guard = subprocess.run(
        ["nft", "list", "table", "inet", "norexlab_guard"], capture_output=True, text=True, check=True
    ).stdout
    assert "ip saddr 198.18.0.0/15 ip daddr != { 198.18.0.0/15, 224.0.0.0/4, 255.255.255.255 } drop" in guard


def test_device_tunnel_through_a_server_with_wireguard(two_servers, lab_internet, tmp_path):
    """apt through the lab cache, wireguard-go on a lab server, and a device using the tunnel and its DNS."""
    on_server(
        "t-alpha",
        "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive "
        "apt-get install -y -q --no-install-recommends wireguard-tools wireguard-go >/dev/null",
    )
    server_pub = on_server("t-alpha", "umask 077; wg genkey > /root/wg.key; wg pubkey < /root/wg.key").strip()
    device_key = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    device_pub = subprocess.run(
        ["wg", "pubkey"], input=device_key, capture_output=True, text=True, check=True
    ).stdout.strip()
    on_server(
        "t-alpha",
        f"""set -e
        (WG_PROCESS_FOREGROUND=1 setsid wireguard-go -f wgt >/dev/null 2>&1 &)
        for i in $(seq 50); do [ -S /var/run/wireguard/wgt.sock ] && break; sleep 0.1; done
        wg set wgt listen-port 51820 private-key /root/wg.key peer {device_pub} allowed-ips 10.77.0.2/32
        ip addr add 10.77.0.1/24 dev wgt
        ip link set wgt up""",
    )
    config = tmp_path / "phone.conf"
    config.write_text(f"""\ufeff[Interface]
PrivateKey = {device_key}
Address = 10.77.0.2/32
DNS = 10.77.0.1
# a comment, as exported configs have

[Peer]
PublicKey = {server_pub}
AllowedIPs = 10.77.0.0/24
Endpoint = {two_servers["t-alpha"]["address"]}:51820
PersistentKeepalive = 25
""")
    norex("lab", "device", "down", "t-tunnel", check=False)
    try:
        dev = json.loads(norex("lab", "device", "up", "t-tunnel", "--config", str(config), "--json").stdout)
        assert dev["wg_interface"]
        norex("lab", "device", "exec", "t-tunnel", "--", "ping", "-c", "2", "-W", "2", "10.77.0.1")
        assert "10.77.0.1" in norex("lab", "device", "exec", "t-tunnel", "--", "cat", "/etc/resolv.conf").stdout
        handshake = on_server("t-alpha", "wg show wgt latest-handshakes").split()
        assert handshake[0] == device_pub and int(handshake[1]) > 0
    finally:
        norex("lab", "device", "down", "t-tunnel", check=False)
        on_server("t-alpha", "ip link del wgt", check=False)
    assert not Path("/etc/netns/norexlab-dev-t-tunnel").exists()
    assert (
        subprocess.run(["ip", "netns", "pids", "norexlab-dev-t-tunnel"], capture_output=True, check=False).returncode
        != 0
    )


def test_bad_device_config_is_refused_and_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("[Interface]\nPrivateKey = not-a-key\n[Peer]\nPublicKey = x\n")
    proc = norex("lab", "device", "up", "t-bad", "--config", str(bad), check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "PrivateKey" in proc.stderr
    hook = tmp_path / "hook.conf"
    hook.write_text("[Interface]\nPostUp = rm -rf /\n")
    proc = norex("lab", "device", "up", "t-bad", "--config", str(hook), check=False)
    assert proc.returncode == 2 and "not supported" in proc.stderr
    assert "t-bad" not in {d["name"] for d in json.loads(norex("lab", "device", "list", "--json").stdout)}
    missing = norex("lab", "device", "up", "t-bad", "--config", str(tmp_path / "nope.conf"), check=False)
    assert missing.returncode == 2 and missing.stderr.startswith("norex: error: cannot read")


def test_a_reused_address_reaches_the_new_server_at_once(lab_internet):
    """The router must not keep sending to the MAC of the server that had the address before."""
    for name in ("t-old", "t-new"):
        norex("lab", "down", name, check=False)
    old = json.loads(norex("lab", "up", "t-old", "--json").stdout)
    norex("lab", "device", "exec", "t-phone", "--", "ping", "-c", "1", "-W", "2", old["address"])
    norex("lab", "down", "t-old")
    try:
        new = json.loads(norex("lab", "up", "t-new", "--json").stdout)
        assert new["address"] == old["address"]
        norex("lab", "device", "exec", "t-phone", "--", "ping", "-c", "1", "-W", "1", new["address"])
    finally:
        norex("lab", "down", "t-new", check=False)


def test_servers_reach_only_the_apt_cache_on_the_host(two_servers):
    """A service on the host's lab address other than the package cache is out of a server's reach."""
    listener = subprocess.Popen(
        ["python3", "-c", f"import socket,time; s=socket.create_server(('{plan.HOST4}', 18080)); time.sleep(60)"]
    )
    try:
        probe = (
            f"python3 -c 'import socket\nfor port in ({plan.APT_CACHE_PORT}, 18080):\n"
            f' try: socket.create_connection(("{plan.HOST4}", port), timeout=2).close(); print(port, "open")\n'
            ' except OSError: print(port, "closed")\''
        )
        time.sleep(0.3)
        out = on_server("t-alpha", probe).split("\n")
        assert f"{plan.APT_CACHE_PORT} open" in out and "18080 closed" in out, out
    finally:
        listener.kill()
