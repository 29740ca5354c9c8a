"""Benchmark: the server agent with a real WireGuard (wireguard-go) and a real device in two namespaces.

Run as root:  .venv/bin/python tests/bench/agent.py [--peers 250] [--requests 1000] [--adds 10]
Uses tests/agent_rig.py (the agent program as the role installs it). Prints, asserts nothing:
- device add to first packet: the peer set with the device PUT to the agent, then a ping every 10 ms until
  the first reply; median and max over --adds adds (the device removed in between);
- GET /v1/status with --peers peers: p50 / p99 / max over --requests requests (one client, one connection
  per request, TLS 1.3 mutual authentication included), and the agent's RSS;
- PUT /v1/peers of --peers peers with a tenth of them replaced, while the device pings every 10 ms: the
  apply time and the pings lost.
Targets (issue 14): add median <= 1 s; status p99 <= 50 ms; agent RSS <= 30 MiB; 0 pings lost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from norex.devices.config import keypair
from tests.agent_rig import AgentRig, device_peer


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def first_reply_seconds(ping_argv: list[str], started: float, timeout: float = 10) -> float:
    """Seconds from started to the first answered ping (ping_argv sends one, waiting 10 ms); inf if none."""
    while time.monotonic() - started < timeout:
        if subprocess.run(ping_argv, capture_output=True, check=False).returncode == 0:
            return time.monotonic() - started
    return float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=250)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--adds", type=int, default=10)
    args = parser.parse_args()
    if not 2 <= args.peers <= 253:
        parser.error("--peers: 2 to 253 (one tunnel subnet)")
    with AgentRig(Path(tempfile.mkdtemp(prefix="norex-bench-agent-"))) as rig:
        numbers = list(range(3, 2 + args.peers))
        others = [device_peer(keypair()[1], n) for n in numbers]

        adds = []
        for _ in range(args.adds):
            # A new device: a key pair of its own, so it holds no session the server could have forgotten.
            private, public = keypair()
            rig.run(rig.device_ns, "wg", "set", rig.device_if, "private-key", "/dev/stdin", input=private)
            started = time.monotonic()
            rig.call("put_peers " + json.dumps([device_peer(public, 2), *others[:10]]))
            adds.append(
                first_reply_seconds(
                    ["ip", "netns", "exec", rig.device_ns, "ping", "-c", "1", "-W", "0.01", "10.66.0.1"], started
                )
            )
        rig.run(rig.device_ns, "wg", "set", rig.device_if, "private-key", "/dev/stdin", input=private)
        device = device_peer(public, 2)
        print(
            f"device add to first packet over {len(adds)} adds: median {statistics.median(adds) * 1000:.0f} ms, "
            f"max {max(adds) * 1000:.0f} ms (PUT through the client, a fresh process, included)"
        )

        rig.call("put_peers " + json.dumps([device, *others]))
        rig.ping()
        _, seconds = rig.calls("status", repeat=args.requests)
        print(
            f"GET /v1/status with {args.peers} peers, {len(seconds)} requests: "
            f"p50 {percentile(seconds, 50) * 1000:.1f} ms, p99 {percentile(seconds, 99) * 1000:.1f} ms, "
            f"max {max(seconds) * 1000:.1f} ms; agent RSS {rig.agent_rss_mib():.1f} MiB"
        )

        tenth = len(others) // 10
        replaced = others[: len(others) - tenth] + [
            device_peer(keypair()[1], n) for n in numbers[len(others) - tenth :]
        ]
        pinger = subprocess.Popen(
            ["ip", "netns", "exec", rig.device_ns, "ping", "-i", "0.01", "-c", "600", "-W", "1", "10.66.0.1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        time.sleep(1)
        answers, put_seconds = rig.calls("put_peers " + json.dumps([device, *replaced]))
        out, _ = pinger.communicate(timeout=60)
        summary = next((line for line in out.splitlines() if "packets transmitted" in line), out.strip())
        print(
            f"PUT /v1/peers of {args.peers} peers ({tenth} replaced) while pinging every 10 ms: "
            f"{put_seconds[0] * 1000:.0f} ms ({answers[0]}); pings: {summary}"
        )


if __name__ == "__main__":
    main()
