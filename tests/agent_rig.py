"""A server agent driving a real WireGuard, with a real device, in two network namespaces (root only).

The agent program runs as norex.vpn.agent installs it (the collection's norex_agent.py with plugin_utils'
inputs.py and wg_peers.py beside it as norex_vpn/), under Debian's python3, inside the server's namespace,
listening on its loopback; wireguard-go makes the server's and the device's interfaces; a veth pair joins
the two namespaces. Used by tests/integration/test_agent_wireguard.py and tests/bench/agent.py. The client
calls run inside the server's namespace too (`python -m tests.agent_rig CALLS`), timing each call there.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLLECTION = REPO / "collections" / "ansible_collections" / "norex" / "vpn"
PORT = 8443
SERVER_ADDRESS, DEVICE_ADDRESS = "198.18.250.1", "198.18.250.2"
SUBNET4, SUBNET6 = "10.66.0.0/24", "fd00:6e6f:7265::/64"


def sh(*argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, input=input, timeout=120, cwd=REPO)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc


class AgentRig:
    def __init__(self, work: Path, online_seconds: int = 180, purge_interval: int = 30):
        suffix = uuid.uuid4().hex[:6]
        self.work = work
        self.server_ns, self.device_ns = f"nxag-s-{suffix}", f"nxag-d-{suffix}"
        self.server_if, self.device_if = f"nxs{suffix}", f"nxd{suffix}"
        self.veth = f"v{suffix}"
        self.online_seconds, self.purge_interval = online_seconds, purge_interval
        self.procs: list[subprocess.Popen] = []
        self.head = "[Interface]\nAddress = 10.66.0.1/24, fd00:6e6f:7265::1/64\nListenPort = 51820\n"

    # -- namespaces and interfaces ----------------------------------------------------------------------------

    def run(self, ns: str, *argv: str, check: bool = True, input: str | None = None):
        return sh("ip", "netns", "exec", ns, *argv, check=check, input=input)

    def _wireguard_go(self, ns: str, iface: str) -> None:
        Path(f"/var/run/wireguard/{iface}.sock").unlink(missing_ok=True)
        self.procs.append(
            subprocess.Popen(
                ["ip", "netns", "exec", ns, "setsid", "wireguard-go", "-f", iface],
                env={**os.environ, "LOG_LEVEL": "silent"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        deadline = time.monotonic() + 10
        while self.run(ns, "ip", "link", "show", iface, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"wireguard-go did not make {iface}")
            time.sleep(0.1)

    def __enter__(self) -> AgentRig:
        from norex.agent.ca import AgentCA, fingerprint, make_csr
        from norex.devices.config import keypair

        for tool in ("wireguard-go", "wg", "conntrack", "ping"):
            if not shutil.which(tool):
                raise RuntimeError(f"{tool} is missing (scripts/install.sh installs it)")
        sh("ip", "netns", "add", self.server_ns)
        sh("ip", "netns", "add", self.device_ns)
        try:
            self._setup(AgentCA, fingerprint, make_csr, keypair)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _setup(self, AgentCA, fingerprint, make_csr, keypair) -> None:
        sh("ip", "link", "add", f"{self.veth}s", "type", "veth", "peer", "name", f"{self.veth}d")
        for ns, end, address in ((self.server_ns, "s", SERVER_ADDRESS), (self.device_ns, "d", DEVICE_ADDRESS)):
            sh("ip", "link", "set", f"{self.veth}{end}", "netns", ns)
            self.run(ns, "ip", "link", "set", "lo", "up")
            self.run(ns, "ip", "address", "add", f"{address}/30", "dev", f"{self.veth}{end}")
            self.run(ns, "ip", "link", "set", f"{self.veth}{end}", "up")
        server_private, self.server_public = keypair()
        device_private, self.device_public = keypair()
        self._wireguard_go(self.server_ns, self.server_if)
        self._wireguard_go(self.device_ns, self.device_if)
        self.run(
            self.server_ns,
            *("wg", "set", self.server_if, "private-key", "/dev/stdin", "listen-port", "51820"),
            input=server_private,
        )
        self.run(self.server_ns, "ip", "address", "add", "10.66.0.1/24", "dev", self.server_if)
        self.run(self.server_ns, "ip", "link", "set", self.server_if, "up")
        self.run(self.device_ns, "wg", "set", self.device_if, "private-key", "/dev/stdin", input=device_private)
        self.run(
            self.device_ns,
            *("wg", "set", self.device_if, "peer", self.server_public),
            *("endpoint", f"{SERVER_ADDRESS}:51820", "allowed-ips", SUBNET4),
        )
        self.run(self.device_ns, "ip", "address", "add", "10.66.0.2/32", "dev", self.device_if)
        self.run(self.device_ns, "ip", "link", "set", self.device_if, "up")
        self.run(self.device_ns, "ip", "route", "add", SUBNET4, "dev", self.device_if)

        lib = self.work / "lib"
        (lib / "norex_vpn").mkdir(parents=True, exist_ok=True)
        shutil.copy(COLLECTION / "roles/agent/files/norex_agent.py", lib)
        for name in ("inputs.py", "wg_peers.py"):
            shutil.copy(COLLECTION / "plugins/plugin_utils" / name, lib / "norex_vpn")
        (lib / "norex_vpn" / "__init__.py").write_text("")
        self.ca = AgentCA(self.work / "ca").ensure()
        key, csr = make_csr("norex-agent")
        (self.work / "agent.key").write_bytes(key)
        certificate = self.ca.sign_server(csr, "norex-agent", ["127.0.0.1"])
        (self.work / "agent.crt").write_bytes(certificate)
        self.pin = fingerprint(certificate)
        self.config_path = self.work / "wg.conf"
        self.config_path.write_text(self.head)
        config = {
            "interface": self.server_if,
            "config_path": str(self.config_path),
            "ipv4_subnet": SUBNET4,
            "ipv6_subnet": SUBNET6,
            "server_public_key": self.server_public,
            "online_seconds": self.online_seconds,
            "purge_interval": self.purge_interval,
            "listen": ["127.0.0.1"],
            "port": PORT,
            "certificate": str(self.work / "agent.crt"),
            "key": str(self.work / "agent.key"),
            "client_ca": str(self.ca.ca_certificate),
        }
        (self.work / "agent.json").write_text(json.dumps(config))
        self.stderr = self.work / "stderr"
        with self.stderr.open("wb") as err:
            self.agent = subprocess.Popen(
                [
                    *("ip", "netns", "exec", self.server_ns, "/usr/bin/python3"),
                    *(str(lib / "norex_agent.py"), str(self.work / "agent.json")),
                ],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.procs.append(self.agent)
        deadline = time.monotonic() + 10
        while "error" in self.call("health")[0]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the agent did not answer: {self.stderr.read_text()}")
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        for proc in reversed(self.procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        sh("ip", "netns", "delete", self.device_ns, check=False)
        sh("ip", "netns", "delete", self.server_ns, check=False)

    # -- what the tests and the bench do ----------------------------------------------------------------------

    def calls(self, *calls: str, repeat: int = 1) -> tuple[list, list[float]]:
        """AgentClient calls ("status", "put_peers JSON") from inside the server's namespace, each `repeat`
        times; the last answer of each, and every call's seconds."""
        args = json.dumps(
            {"port": PORT, "pin": self.pin, "ca": str(self.ca.folder), "calls": list(calls), "repeat": repeat}
        )
        out = self.run(self.server_ns, sys.executable, "-m", "tests.agent_rig", args).stdout
        result = json.loads(out)
        return result["answers"], result["seconds"]

    def call(self, *calls: str) -> list:
        return self.calls(*calls)[0]

    def ping(self, count: int = 3, interval: float = 0.2) -> bool:
        argv = ("ping", "-c", str(count), "-i", str(interval), "-W", "1", "10.66.0.1")
        return self.run(self.device_ns, *argv, check=False).returncode == 0

    def endpoints(self) -> str:
        return self.run(self.server_ns, "wg", "show", self.server_if, "endpoints").stdout

    def wg(self, *what: str) -> str:
        return self.run(self.server_ns, "wg", "show", self.server_if, *what).stdout

    def agent_rss_mib(self) -> float:
        """Resident memory of the agent's python3 (the child of `ip netns exec`, which execs it)."""
        for line in Path(f"/proc/{self.agent.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


def device_peer(public_key: str, n: int) -> dict:
    return {"public_key": public_key, "addresses": [f"10.66.0.{n}/32", f"fd00:6e6f:7265::{n:x}/128"]}


def _client_main(raw: str) -> None:
    from norex.agent.ca import AgentCA
    from norex.agent.client import AgentClient, AgentError

    spec = json.loads(raw)
    client = AgentClient("127.0.0.1", spec["port"], spec["pin"], AgentCA(Path(spec["ca"])))
    answers, seconds = [], []
    for call in spec["calls"]:
        name, _, arg = call.partition(" ")
        for _ in range(spec.get("repeat", 1)):
            started = time.perf_counter()
            try:
                answer = getattr(client, name)(*([json.loads(arg)] if arg else []))
            except AgentError as exc:
                answer = {"error": str(exc)}
            seconds.append(time.perf_counter() - started)
        answers.append(answer)
    print(json.dumps({"answers": answers, "seconds": seconds}))


if __name__ == "__main__":
    _client_main(sys.argv[1])
