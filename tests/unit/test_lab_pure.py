"""The lab's pure parts: names, addresses, mirror discovery, WireGuard client configs, doctor advice."""

from __future__ import annotations

import base64
import re

import pytest

from norex.errors import UsageError
from norex.lab import host_tools, image, plan, wgconf
from norex.lab.state import free_index, validate_name

KEY = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(1, 33))).decode()


@pytest.mark.parametrize("name", ["a", "web-1", "c-3f9a2b7c", "x" * 32])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "1abc", "-a", "a-", "a_b", "a.b", "a b", "x" * 33, "../etc", "é"])
def test_invalid_names(name):
    with pytest.raises(UsageError, match="invalid lab server name"):
        validate_name(name)


def test_addresses_stay_in_the_benchmarking_range_and_ula():
    assert plan.server_addresses(1) == ("198.18.1.1", "fd4e:6f72:6578::1:1")
    assert plan.device_addresses(254) == ("198.18.2.254", "fd4e:6f72:6578::2:fe")
    assert plan.NET4.supernet().with_prefixlen == "198.18.0.0/15"
    with pytest.raises(ValueError):
        plan.server_addresses(255)


def test_free_index_fills_gaps_and_reports_a_full_lab():
    assert free_index({1, 2, 4}) == 3
    with pytest.raises(UsageError, match="full"):
        free_index(set(range(1, 255)))


def test_mirrors_from_deb822_and_one_line_sources():
    deb822 = """Types: deb
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.invalid/debian
Suites: bookworm
"""
    assert image._parse_deb822(deb822) == [
        ("http://mirror.invalid/debian", ["bookworm", "bookworm-updates"]),
        ("http://mirror.invalid/debian-security", ["bookworm-security"]),
    ]
    one_line = "deb [signed-by=/k.gpg] http://m.invalid/debian bookworm main\n# deb http://x y\ndeb-src http://s z\n"
    assert image._parse_one_line(one_line) == [("http://m.invalid/debian", ["bookworm"])]


def test_lab_servers_use_the_host_mirror_through_the_cache():
    sources, conf = image.apt_conf_for_servers(image.Mirrors("http://m.invalid/debian", "http://m.invalid/sec"))
    assert "deb http://m.invalid/debian bookworm main" in sources
    assert "deb http://m.invalid/sec bookworm-security main" in sources
    assert f'Acquire::http::Proxy "http://{plan.HOST4}:{plan.APT_CACHE_PORT}";' in conf


def test_doctor_names_the_exact_install_command():
    checks = [
        host_tools.Check("root", True, None),
        host_tools.Check("nsd", False, "nsd"),
        host_tools.Check("debootstrap", False, "debootstrap"),
        host_tools.Check("tun", False, None, "no tun"),
    ]
    assert host_tools.install_command(checks) == "apt-get install -y --no-install-recommends debootstrap nsd"


GOOD = f"""\ufeff[Interface]
PrivateKey = {KEY}
Address = 10.8.0.2/32, fd00:8::2/128
DNS = 10.8.0.1
MTU = 1380

[Peer]   # the customer's server
PublicKey = {KEY2}
AllowedIPs = 0.0.0.0/0, ::/0
Endpoint = [fd4e:6f72:6578::1:1]:51820
PersistentKeepalive = 25
"""


def test_parse_a_client_config():
    cfg = wgconf.parse(GOOD.replace("\n", "\r\n"))
    assert cfg.addresses == ["10.8.0.2/32", "fd00:8::2/128"]
    assert cfg.dns == ["10.8.0.1"] and cfg.mtu == 1380
    peer = cfg.peers[0]
    assert peer.endpoint == ("fd4e:6f72:6578::1:1", 51820)
    assert peer.allowed_ips == ["0.0.0.0/0", "::/0"]
    native = cfg.wg_setconf()
    assert "Address" not in native and "DNS" not in native and "MTU" not in native
    assert f"PublicKey = {KEY2}" in native and "Endpoint = [fd4e:6f72:6578::1:1]:51820" in native


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no [Interface] PrivateKey"),
        (f"[Interface]\nPrivateKey = {KEY}\n", "no [Peer]"),
        ("[Interface]\nPrivateKey = abc\n[Peer]\nPublicKey = abc\n", "PrivateKey is not a WireGuard key"),
        (f"[Interface]\nPrivateKey = {KEY}\nPostUp = curl x | sh\n[Peer]\nPublicKey = {KEY2}\n", "not supported"),
        (
            f"[Interface]\nPrivateKey = {KEY}\n[Peer]\nPublicKey = {KEY2}\nEndpoint = vpn.example:51820\n",
            "not an IP address",
        ),
        (f"[Interface]\nPrivateKey = {KEY}\n[Peer]\nPublicKey = {KEY2}\nEndpoint = 198.18.1.1\n", "needs a port"),
        (f"[Interface]\nPrivateKey = {KEY}\n[Peer]\nPublicKey = {KEY2}\nAllowedIPs = 10.0.0.0/33\n", "not a network"),
        (f"[Interface]\nPrivateKey = {KEY}\nAddress = banana\n[Peer]\nPublicKey = {KEY2}\n", "Address"),
        (f"[Interface]\nPrivateKey = {KEY}\nMTU = 99999\n[Peer]\nPublicKey = {KEY2}\n", "MTU must be"),
        (f"[Wat]\nPrivateKey = {KEY}\n", "unknown section"),
        ("PrivateKey = x\n", "inside [Interface] or [Peer]"),
        (f"[Interface]\nPrivateKey = {KEY}\nColour = blue\n[Peer]\nPublicKey = {KEY2}\n", "unknown key"),
    ],
)
def test_bad_client_configs_get_one_clear_error(text, message):
    with pytest.raises(UsageError, match=re.escape(message)) as err:
        wgconf.parse(text)
    assert "\n" not in str(err.value)


def test_an_unknown_lab_image_is_one_line_and_makes_nothing(tmp_path, monkeypatch):
    from norex.lab import prepared
    from tests.conftest import norex

    monkeypatch.setenv("NOREX_LAB_DIR", str(tmp_path))
    proc = norex("lab", "up", "x", "--image", "latest", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "'latest' is not one of 'stock', 'prepared'" in proc.stderr
    with pytest.raises(UsageError, match="unknown lab image 'latest': choose stock or prepared"):
        prepared.image_folder("latest")
    assert not (tmp_path / "servers").exists()


def test_the_lab_backend_makes_servers_from_the_image_the_settings_name():
    from norex.provision import get_provisioner

    assert get_provisioner("lab", "owner").image == "stock"
    assert get_provisioner("lab", "owner", lab_image="prepared").image == "prepared"
