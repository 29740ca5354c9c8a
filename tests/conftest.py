"""Shared helpers: the norex CLI as a user runs it, and the lab servers the integration tests share."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from norex.agent.ca import AgentCA
from norex.converge.runner import strategy_environment
from norex.devices.config import client_config

NOREX = str(Path(sys.executable).with_name("norex"))
REPO = Path(__file__).resolve().parent.parent


def norex(*args: str, check: bool = True, timeout: float = 600, **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([NOREX, *args], capture_output=True, text=True, timeout=timeout, check=False, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"norex {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that reboot or power off the shared converged server run last: the others check it in the
    states it passes through in order (right after the first converge, after a second, after a reboot)."""
    items.sort(key=lambda item: item.get_closest_marker("restarts_shared_server") is not None)


def on_server(name: str, command: str, check: bool = True) -> str:
    """Run a shell command on a lab server over SSH, as an operator would."""
    return norex("lab", "ssh", name, "--", command, check=check).stdout


def grep_on_server(name: str, needle: str, *folders: str) -> str:
    """The files under folders (memory-backed ones too) that hold needle; grep's own errors fail the test."""
    proc = norex("lab", "ssh", name, "--", "grep", "-rlaF", "-D", "skip", needle, *folders, check=False)
    assert proc.returncode in (0, 1) and not proc.stderr.strip(), proc.stderr
    return proc.stdout


def s_client_without_certificate(address: str, port: int) -> subprocess.CompletedProcess[bytes]:
    """`openssl s_client` with no client certificate sending an HTTP request: the agent must answer none."""
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"{address}:{port}", "-tls1_3", "-quiet"],
        input=b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n",
        capture_output=True,
        timeout=20,
    )


def reboot(name: str, timeout: float = 90) -> str:
    """`systemctl reboot` inside a lab server; return once it is back (a new boot id) and booted."""
    import time

    before = on_server(name, "cat /proc/sys/kernel/random/boot_id").strip()
    norex("lab", "ssh", name, "--", "systemctl", "reboot", check=False)
    deadline = time.monotonic() + timeout
    while True:
        proc = norex(
            "lab",
            "ssh",
            name,
            "--",
            "cat /proc/sys/kernel/random/boot_id; systemctl is-system-running --wait",
            check=False,
        )
        words = proc.stdout.split()
        if proc.returncode in (0, 1) and len(words) == 2 and words[0] != before:
            assert words[1] in ("running", "degraded"), words
            return words[0]
        assert time.monotonic() < deadline, f"{name} did not come back after reboot"
        time.sleep(0.5)


def lab_names() -> set[str]:
    return {s["name"] for s in json.loads(norex("lab", "list", "--json").stdout)}


def ensure_absent(*names: str) -> None:
    """Remove servers left by an earlier, interrupted run (CI runs right after development work)."""
    existing = lab_names()
    for name in names:
        if name in existing:
            norex("lab", "down", name)


def wg_keypair() -> tuple[str, str]:
    private = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    public = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True, check=True).stdout.strip()
    return private, public


def converge(
    limit: str, extra_vars: dict, workdir: Path, *, check: bool = False, playbook_path: str = "playbooks/site.yml"
) -> subprocess.CompletedProcess[str]:
    """Run a playbook (site.yml unless told) against lab servers, from a fresh `norex lab inventory`, as ops would."""
    inventory = workdir / "inventory.yml"
    inventory.write_text(norex("lab", "inventory").stdout)
    varfile = workdir / "vars.json"
    varfile.write_text(json.dumps(extra_vars))
    playbook = str(Path(sys.executable).with_name("ansible-playbook"))
    cmd = [playbook, "-i", str(inventory), "--limit", limit, "-e", f"@{varfile}", playbook_path]
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
    # NOREX_ANSIBLE_MITOGEN=1 runs the suite's converges with Mitogen too (CI runs without it).
    env |= strategy_environment(os.environ.get("NOREX_ANSIBLE_MITOGEN", "") in ("1", "true", "yes"))
    return subprocess.run(
        [*cmd, *(["--check"] if check else [])],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=env,
    )


def lab_handle(name: str):
    """A lab server as the control plane's converge sees it (any lab server, not only a plane's own)."""
    from norex.lab import inventory as lab_inventory
    from norex.lab.state import load_server
    from norex.provision.interface import ServerHandle

    record = load_server(name)
    assert record is not None, name
    return ServerHandle(
        name,
        "lab",
        name,
        record.address,
        record.address6,
        connection={**lab_inventory.shared_connection(), **lab_inventory.host_connection(record)},
        ops_cidrs=lab_inventory.OPS_CIDRS,
        control_plane_cidrs=lab_inventory.CONTROL_PLANE_CIDRS,
        resolver_root=lab_inventory.resolver_root(),
    )


def lab_site_variables(server, settings, peers) -> dict:
    """site.yml's variables as the lab control plane's worker hands them over: the fleet's blocklist built
    first (the default sources' copies on the lab web site, unless NOREX_BLOCKLIST_FILE names a build)."""
    from norex.blocklist import fleet
    from norex.converge import site_variables
    from norex.provision.lab import LabProvisioner

    fleet.ensure(settings, LabProvisioner("bench").blocklist_mirror)
    return site_variables(server, settings, peers)


def recap(output: str, host: str) -> dict[str, int]:
    """The PLAY RECAP counters for one host."""
    for line in output.splitlines():
        if line.startswith(host + " ") and "ok=" in line:
            return {k: int(v) for k, v in (item.split("=") for item in line.split(":", 1)[1].split())}
    raise AssertionError(f"no recap for {host}:\n{output[-2000:]}")


@pytest.fixture(scope="session")
def two_servers() -> Iterator[dict[str, dict]]:
    """Two lab servers, made once for the whole run and always removed afterwards."""
    names = ("t-alpha", "t-beta")
    ensure_absent(*names)
    servers = {}
    try:
        for name in names:
            servers[name] = json.loads(norex("lab", "up", name, "--json").stdout)
        yield servers
    finally:
        ensure_absent(*names)


def build_blocklist(workdir: Path, name: str, blocked: list[str], allowed: list[str] = ()) -> Path:
    """A blocklist compiled as the control plane compiles it (`norex blocklist build`, always_refuse)."""
    src = workdir / f"{name}-blocked.txt"
    src.write_text("".join(f"{n}\n" for n in blocked))
    allow = workdir / f"{name}-allowed.txt"
    allow.write_text("".join(f"{n}\n" for n in allowed))
    out = workdir / name
    norex("blocklist", "build", f"ads={src}", "--allow", str(allow), "--zone-type", "always_refuse", "--out", str(out))
    return out / "blocklist.conf"


# The shared converged server: what every lab test that only needs "a server as site.yml makes it" uses.
CONVERGED = "t-conv"
CONVERGED_PHONE = "t-conv-phone"
CONVERGED_BLOCKED = ["ads.example.test", "tracker.example.test"]
CONVERGED_ALLOWED = ["ok.ads.example.test"]
AGENT_PORT = 8443


def ops_variables(ca: AgentCA, phone_public_key: str, blocklist: Path) -> dict:
    """site.yml's variables as ops hand them over for one lab server: one phone as its peer, the agent open to the
    lab host (the control plane) only."""
    return {
        "norex_ops_cidrs": ["198.18.0.1/32", "fd4e:6f72:6578::1/128"],
        "norex_control_plane_cidrs": ["198.18.0.1/32", "fd4e:6f72:6578::1/128"],
        "agent_ca_dir": str(ca.folder),
        "agent_port": AGENT_PORT,
        "firewall_agent_port": AGENT_PORT,
        "wireguard_peers": [{"public_key": phone_public_key, "addresses": ["10.66.0.2/32", "fd9a:3c41:7be2::2/128"]}],
        "resolver_blocklist_file": str(blocklist),
    }


@pytest.fixture(scope="session")
def converged_server(tmp_path_factory) -> Iterator[dict]:
    """One lab server converged once with playbooks/site.yml (a phone as its peer, a small blocklist), shared
    by the whole run; a test that changes it puts back what it changed. Removed at the end."""
    work = tmp_path_factory.mktemp("converged")
    ensure_absent(CONVERGED)
    norex("lab", "device", "down", CONVERGED_PHONE, check=False)
    server = json.loads(norex("lab", "up", CONVERGED, "--json").stdout)
    private, public = wg_keypair()
    blocklist = build_blocklist(work, "first", CONVERGED_BLOCKED, CONVERGED_ALLOWED)
    ca = AgentCA(work / "agent-ca").ensure()
    variables = ops_variables(ca, public, blocklist)
    try:
        result = converge(CONVERGED, variables, work)
        assert result.returncode == 0, result.stdout[-5000:]
        server_public = on_server(CONVERGED, "wg show wg0 public-key").strip()
        config = work / "phone.conf"
        config.write_text(client_config(private, "10.66.0.2", "fd9a:3c41:7be2::2", server_public, server["address"]))
        norex("lab", "device", "up", CONVERGED_PHONE, "--config", str(config))
        yield {
            "name": CONVERGED,
            "server": server,
            "work": work,
            "vars": variables,
            "phone": CONVERGED_PHONE,
            "phone_public_key": public,
            "blocklist": blocklist,
            "agent_ca": ca,
        }
    finally:
        norex("lab", "device", "down", CONVERGED_PHONE, check=False)
        ensure_absent(CONVERGED)
