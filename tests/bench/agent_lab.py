"""Benchmark: the server agent on a converged lab server (its systemd unit, hardening and all), from the host.

Run as root:  .venv/bin/python tests/bench/agent_lab.py [--peers 250] [--requests 1000] [--adds 10] [--mitogen]
Converges a fresh lab server with site.yml as the control plane does (the agent included), then drives its
agent with the control plane's own client (mutual TLS, the certificate pinned) while a lab device pings
through the tunnel. Prints, asserts nothing:
- device add to first packet: the peer set with a new device PUT to the agent, the lab device brought up
  from its config, then a ping every 10 ms until the first reply; median and max over --adds adds;
- GET /v1/status with --peers peers: p50 / p99 / max over --requests requests (one connection and one TLS 1.3
  mutual handshake per request), and the agent's RSS on the server;
- PUT /v1/peers of --peers peers with a tenth of them replaced, while the device pings every 10 ms: the
  apply time and the pings lost.
Targets (issue 14): add median <= 1 s; status p99 <= 50 ms; agent RSS <= 30 MiB; 0 pings lost.
tests/bench/agent.py measures the agent program alone, in two network namespaces.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from norex.agent.ca import AgentCA
from norex.agent.client import AgentClient
from norex.converge import Peer, run_site
from norex.converge.variables import peer_variables
from norex.devices.config import client_config, keypair
from norex.lab import phones
from norex.settings import load_settings
from norex.tunnel import TUNNEL
from tests.bench.agent import first_reply_seconds, percentile
from tests.conftest import ensure_absent, lab_handle, lab_site_variables, norex, on_server

NAME, DEVICE = "bench-agent", "bench-agent-phone"


def device_ping(*args: str) -> list[str]:
    return phones.exec_argv(DEVICE, ["ping", *args, TUNNEL.dns[0]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=250)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--adds", type=int, default=10)
    parser.add_argument("--mitogen", action="store_true", help="converge with Mitogen's strategy (norex[fast])")
    args = parser.parse_args()
    if not 2 <= args.peers <= 250:
        parser.error("--peers: 2 to 250 (one tunnel subnet)")
    ensure_absent(NAME)
    norex("lab", "device", "down", DEVICE, check=False)
    settings = load_settings()
    norex("lab", "up", NAME, "--json")
    try:
        server = lab_handle(NAME)
        converged = run_site(server, lab_site_variables(server, settings, []), mitogen=args.mitogen)
        print(f"converge with the agent: {converged.seconds:.1f} s")
        client = AgentClient(server.ipv4, settings.agent_port, converged.agent_pin, AgentCA(settings.agent_ca_dir))
        numbers = list(range(3, 2 + args.peers))
        others = peer_variables(Peer(keypair()[1], *TUNNEL.device_addresses(n)) for n in numbers)

        adds, ups = [], []
        for _ in range(args.adds):
            # A new device each time, as a customer's: its config exists once `devices add` has made it, so the
            # peer set goes first and the device comes up after (a device already trying before its peer exists
            # waits for WireGuard's 5 s handshake retry instead).
            private, public = keypair()
            config = client_config(private, *TUNNEL.device_addresses(2), converged.public_key, server.ipv4)
            device = peer_variables([Peer(public, *TUNNEL.device_addresses(2))])
            norex("lab", "device", "down", DEVICE, check=False)
            started = time.monotonic()
            client.put_peers(device + others[:10])
            applied = time.monotonic()
            phones.up(DEVICE, config)
            ups.append(time.monotonic() - applied)
            adds.append(first_reply_seconds(device_ping("-c", "1", "-W", "0.01"), started))
        print(
            f"device add to first packet over {len(adds)} adds: median {statistics.median(adds) * 1000:.0f} ms, "
            f"max {max(adds) * 1000:.0f} ms (the PUT through the control plane's client, then the lab device "
            f"brought up from its config: median {statistics.median(ups) * 1000:.0f} ms of it)"
        )

        client.put_peers(device + others)
        subprocess.run(device_ping("-c", "3", "-i", "0.2"), capture_output=True, check=True)
        seconds = []
        for _ in range(args.requests):
            started = time.perf_counter()
            client.status()
            seconds.append(time.perf_counter() - started)
        pid = on_server(NAME, "systemctl show -P MainPID norex-agent.service").strip()
        rss = on_server(NAME, f"grep VmRSS /proc/{pid}/status").split()[1]
        print(
            f"GET /v1/status with {args.peers} peers, {len(seconds)} requests: "
            f"p50 {percentile(seconds, 50) * 1000:.1f} ms, p99 {percentile(seconds, 99) * 1000:.1f} ms, "
            f"max {max(seconds) * 1000:.1f} ms; agent RSS {int(rss) / 1024:.1f} MiB"
        )

        tenth = len(others) // 10
        replaced = others[: len(others) - tenth] + peer_variables(
            Peer(keypair()[1], *TUNNEL.device_addresses(n)) for n in numbers[len(others) - tenth :]
        )
        pinger = subprocess.Popen(
            device_ping("-i", "0.01", "-c", "600", "-W", "1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        time.sleep(1)
        started = time.perf_counter()
        answer = client.put_peers(device + replaced)
        put_seconds = time.perf_counter() - started
        out, _ = pinger.communicate(timeout=60)
        summary = next((line for line in out.splitlines() if "packets transmitted" in line), out.strip())
        print(
            f"PUT /v1/peers of {args.peers} peers ({tenth} replaced) while pinging every 10 ms: "
            f"{put_seconds * 1000:.0f} ms ({answer}); pings: {summary}"
        )
    finally:
        norex("lab", "device", "down", DEVICE, check=False)
        ensure_absent(NAME)


if __name__ == "__main__":
    main()
