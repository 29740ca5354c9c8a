"""The server agent on loopback: mutual TLS refusals, request checks, and nothing of a request in its output.

The agent runs as the role installs it (roles/agent/files/norex_agent.py with the collection's own
plugin_utils/{inputs,wg_peers}.py beside it as norex_vpn/), under Debian's python3, with certificates from the
control plane's CA (norex/agent/ca.py). The interface it names does not exist here: what WireGuard does is
checked in the lab tests; these checks must all pass before wg would be asked anything.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from norex.agent.ca import AgentCA, fingerprint, make_csr
from norex.agent.client import AgentClient, AgentError
from norex.errors import UsageError
from norex.net import free_port, port_open
from tests.conftest import s_client_without_certificate

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "collections" / "ansible_collections" / "norex" / "vpn"
KEY = "YNXtAzepDqRv9H52osJVDQnznT5AL11eQ+B41pG0KTk="


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    work = tmp_path_factory.mktemp("agent")
    lib = work / "lib"
    (lib / "norex_vpn").mkdir(parents=True)
    shutil.copy(COLLECTION / "roles/agent/files/norex_agent.py", lib)
    for name in ("inputs.py", "wg_peers.py"):
        shutil.copy(COLLECTION / "plugins/plugin_utils" / name, lib / "norex_vpn")
    (lib / "norex_vpn" / "__init__.py").write_text("")
    ca = AgentCA(work / "ca").ensure()
    key, csr = make_csr("agent-test")
    (work / "agent.key").write_bytes(key)
    certificate = ca.sign_server(csr, "agent-test", ["127.0.0.1"])
    (work / "agent.crt").write_bytes(certificate)
    shutil.copy(ca.ca_certificate, work / "client-ca.crt")
    (work / "wg0.conf").write_text("[Interface]\nAddress = 10.66.0.1/24\n")
    port = free_port()
    config = {
        "interface": "norexnone0",
        "config_path": str(work / "wg0.conf"),
        "ipv4_subnet": "10.66.0.0/24",
        "ipv6_subnet": "fd00:6e6f:7265::/64",
        "online_seconds": 180,
        "purge_interval": 3600,
        "listen": ["127.0.0.1"],
        "port": port,
        "certificate": str(work / "agent.crt"),
        "key": str(work / "agent.key"),
        "client_ca": str(work / "client-ca.crt"),
        "dns_tally": "/nonexistent/norex-dns-tally",
    }
    (work / "agent.json").write_text(json.dumps(config))
    stderr = work / "stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            ["/usr/bin/python3", str(lib / "norex_agent.py"), str(work / "agent.json")],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + 10
    while not port_open("127.0.0.1", port):
        assert proc.poll() is None, stderr.read_text()
        assert time.monotonic() < deadline, "the agent did not listen"
        time.sleep(0.05)
    client = AgentClient("127.0.0.1", port, fingerprint(certificate), ca, label="agent-test")
    yield {"client": client, "ca": ca, "port": port, "work": work, "stderr": stderr, "certificate": certificate}
    proc.terminate()
    proc.wait(5)


def tls_context(agent, key: bytes | None, certificate: bytes | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(agent["ca"].ca_certificate)
    if key and certificate:
        folder = agent["work"] / uuid.uuid4().hex
        folder.mkdir()
        (folder / "k").write_bytes(key)
        (folder / "c").write_bytes(certificate)
        context.load_cert_chain(folder / "c", folder / "k")
    return context


def raw_request(agent, context: ssl.SSLContext, request: bytes) -> bytes:
    """Send bytes over TLS; what came back (b"" when the agent refused the handshake)."""
    with (
        socket.create_connection(("127.0.0.1", agent["port"]), timeout=5) as plain,
        context.wrap_socket(plain) as tls,
    ):
        tls.sendall(request)
        chunks = []
        while chunk := tls.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def refused(agent, context: ssl.SSLContext) -> bool:
    try:
        answer = raw_request(agent, context, b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    except (ssl.SSLError, ConnectionError):
        return True
    return answer == b""


def test_health_with_our_client_certificate(agent):
    health = agent["client"].health()
    assert set(health) == {"version", "uptime_seconds"}


def test_no_client_certificate_is_refused_in_the_handshake(agent):
    assert refused(agent, tls_context(agent, None, None))


def test_a_certificate_of_another_ca_is_refused(agent, tmp_path):
    other = AgentCA(tmp_path / "other").ensure()
    key, certificate = other.issue_client("intruder")
    assert refused(agent, tls_context(agent, key, certificate))


def test_an_expired_certificate_is_refused(agent):
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    key, certificate = agent["ca"].issue_client("old", not_before=past, not_after=past + datetime.timedelta(days=1))
    assert refused(agent, tls_context(agent, key, certificate))


def test_openssl_s_client_without_a_certificate_gets_no_http(agent):
    if not shutil.which("openssl"):
        pytest.fail("openssl is missing (scripts/install.sh installs it)")
    proc = s_client_without_certificate("127.0.0.1", agent["port"])
    assert b"HTTP/1.1" not in proc.stdout
    assert b"alert" in proc.stderr.lower() or proc.returncode != 0


def test_tls_below_1_3_is_refused(agent):
    key, certificate = agent["ca"].issue_client("old-tls")
    context = tls_context(agent, key, certificate)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    assert refused(agent, context)


def test_a_wrong_pin_is_refused_by_the_client(agent):
    wrong = AgentClient("127.0.0.1", agent["port"], "0" * 64, agent["ca"], label="agent-test")
    with pytest.raises(AgentError, match="did not show the certificate pinned"):
        wrong.health()


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"not json", 400, "not JSON"),
        (b"[]", 400, "JSON object"),
        (json.dumps({"peers": [{"public_key": "short", "addresses": ["10.66.0.2/32"]}]}).encode(), 400, "public key"),
        (
            json.dumps(
                {
                    "peers": [
                        {"public_key": KEY, "addresses": ["10.66.0.2/32"]},
                        {"public_key": "A" * 43 + "=", "addresses": ["10.66.0.2/32"]},
                    ]
                }
            ).encode(),
            400,
            "duplicate",
        ),
        (json.dumps({"peers": [{"public_key": KEY, "addresses": ["10.99.0.2/32"]}]}).encode(), 400, "outside"),
    ],
)
def test_bad_peer_sets_get_a_one_line_reason(agent, body, status, reason):
    key, certificate = agent["ca"].issue_client("cp")
    request = (
        b"PUT /v1/peers HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    answer = raw_request(agent, tls_context(agent, key, certificate), request)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status}".encode()), head
    message = json.loads(payload)["error"]
    assert reason in message and "\n" not in message
    assert KEY not in message


def test_a_10_mb_body_is_refused_unread(agent):
    key, certificate = agent["ca"].issue_client("cp")
    request = b"PUT /v1/peers HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 10485760\r\n\r\n"
    answer = raw_request(agent, tls_context(agent, key, certificate), request)
    assert answer.startswith(b"HTTP/1.1 413")


def test_unknown_paths_and_methods(agent):
    key, certificate = agent["ca"].issue_client("cp")
    context = tls_context(agent, key, certificate)
    assert raw_request(agent, context, b"GET /v2/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(
        b"HTTP/1.1 404"
    )
    assert raw_request(agent, context, b"DELETE /v1/peers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(
        b"HTTP/1.1 405"
    )


def test_nothing_of_a_request_reaches_the_agents_output(agent, tmp_path):
    marker = f"norexmarker{uuid.uuid4().hex}"
    key, certificate = agent["ca"].issue_client("cp")
    good = tls_context(agent, key, certificate)
    other = AgentCA(tmp_path / "other").ensure()
    bad = tls_context(agent, *other.issue_client(marker))
    body = json.dumps({"peers": [{"public_key": marker, "addresses": [marker]}]}).encode()
    requests = [
        f"GET /{marker} HTTP/1.1\r\nHost: {marker}\r\nX-{marker}: {marker}\r\nConnection: close\r\n\r\n".encode(),
        f"PUT /v1/peers HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body,
        f"GET /v1/status HTTP/1.1\r\nHost: x\r\nUser-Agent: {marker}\r\nConnection: close\r\n\r\n".encode(),
        f"{marker} {marker} {marker}\r\n\r\n".encode(),
    ]
    for request in requests:
        for context in (good, bad):
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                raw_request(agent, context, request)
    time.sleep(0.2)
    assert marker not in agent["stderr"].read_text(errors="replace")


def test_a_server_keeps_its_certificate_only_while_it_is_right(agent, tmp_path):
    from ansible_collections.norex.vpn.plugins.plugin_utils import agent_ca
    from cryptography.hazmat.primitives import serialization

    ca = agent["ca"]
    key_pem = (agent["work"] / "agent.key").read_bytes()
    public = (
        serialization.load_pem_private_key(key_pem, password=None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    held = agent["certificate"].decode()
    ca_pem = ca.ca_certificate.read_bytes()
    assert agent_ca.needs_new_certificate(held, ca_pem, public, ["127.0.0.1"]) == ""
    assert agent_ca.needs_new_certificate("", ca_pem, public, ["127.0.0.1"]) == "none yet"
    assert agent_ca.needs_new_certificate(held, ca_pem, public, ["127.0.0.2"]) == "for other addresses"
    other = AgentCA(tmp_path / "other").ensure()
    assert agent_ca.needs_new_certificate(held, other.ca_certificate.read_bytes(), public, ["127.0.0.1"]) == (
        "issued by another CA"
    )
    _, other_key_csr = make_csr("x")
    stranger = ca.sign_server(other_key_csr, "x", ["127.0.0.1"]).decode()
    assert agent_ca.needs_new_certificate(stranger, ca_pem, public, ["127.0.0.1"]) == "for another key"


def test_the_ca_keeps_its_keys_private(agent):
    ca = agent["ca"]
    assert ca.folder.stat().st_mode & 0o777 == 0o700
    for key in (ca.ca_key, ca.client_key):
        assert key.stat().st_mode & 0o777 == 0o600


def test_a_forged_csr_is_refused(agent):
    with pytest.raises(UsageError, match="not a PEM CSR"):
        agent["ca"].sign_server(
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "x", []
        )
