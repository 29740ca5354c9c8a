"""Benchmark: the customer dashboard's devices page for a customer with --devices devices, their live state read
from a real agent on a converged lab server (the same client the CLI uses), served by uvicorn on loopback.

Run as root:  .venv/bin/python tests/bench/dashboard.py [--devices 20] [--requests 200]
Converges a fresh lab server with site.yml as the control plane does (the agent included), records it and the
customer in a throwaway SQLite database, adds the devices (their peer set pushed to the agent), logs in with a
one-time link, then times, one request after another over one HTTP connection:
- GET /devices: the page with every device's dot and transfer, and the blocked-lookups tally (two agent calls);
- GET /devices/status: what the page's refresh asks every 10 s;
- GET /what-we-store (no agent call), and each agent call alone, for where the time goes.
Prints p50 / p99 / max; asserts nothing. The sign-up-to-ready time is printed by the browser test
(tests/e2e/test_devices_lab.py, run with -s).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx
import uvicorn

from norex.agent import fleet
from norex.converge import run_site
from norex.db.database import Database
from norex.db.models import Customer, Server
from norex.devices import store as devices
from norex.devices.config import keypair
from norex.settings import load_settings
from norex.web import accounts
from norex.web.dashboard import create_dashboard
from tests.bench.agent import percentile
from tests.conftest import ensure_absent, lab_handle, lab_site_variables, norex

NAME = "bench-dashboard"


def timed(client: httpx.Client, path: str, count: int) -> list[float]:
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        answer = client.get(path)
        seconds.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.status_code
    return seconds


def report(what: str, seconds: list[float]) -> None:
    ms = sorted(s * 1000 for s in seconds)
    print(f"{what}: p50 {percentile(ms, 50):.1f} ms, p99 {percentile(ms, 99):.1f} ms, max {ms[-1]:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    ensure_absent(NAME)
    work = Path(tempfile.mkdtemp(prefix="norex-bench-dashboard-"))
    database = Database(f"sqlite:///{work / 'norex.db'}")
    database.upgrade()
    port = int(os.environ.get("BENCH_PORT", "0")) or 18000 + secrets.randbelow(1000)
    settings = load_settings(
        database_url=str(database.engine.url),
        session_secret=secrets.token_urlsafe(32),
        smtp_host="127.0.0.1",
        dashboard_url=f"http://127.0.0.1:{port}",
    )
    norex("lab", "up", NAME, "--json")
    try:
        server = lab_handle(NAME)
        converged = run_site(server, lab_site_variables(server, settings, []), mitogen=False)
        print(f"converge with the agent: {converged.seconds:.1f} s")
        with database.write() as session:
            session.add(Customer(id="c-bench000000000001", email="bench@example.test", stripe_customer_id="cus_B",
                                 status="active", desired="present", created_at=0))  # fmt: skip
            session.add(Server(customer_id="c-bench000000000001", backend="lab", name=NAME, ipv4=server.ipv4,
                               ipv6=server.ipv6, public_key=converged.public_key, state="ready",
                               agent_pin=converged.agent_pin, updated_at=0))  # fmt: skip
        for n in range(args.devices):
            devices.add(database, "c-bench000000000001", f"Device {n + 1}", keypair()[1])
        assert fleet.push_peers(database, settings, "c-bench000000000001"), "the agent did not take the peer set"
        app = create_dashboard(settings, database)
        served = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=served.run, daemon=True).start()
        while not served.started:
            time.sleep(0.05)
        with database.write() as session:
            token = accounts.new_link(session, "bench@example.test")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            confirm = client.get(f"/login/{token}")
            (csrf,) = set(re.findall(r'name="csrf" value="([^"]+)"', confirm.text))
            assert client.post(f"/login/{token}", data={"csrf": csrf}).status_code == 303
            page = client.get("/devices").text
            assert page.count("data-device=") == args.devices and 'id="blocked"' in page, "no live state read"
            report(
                f"GET /devices, {args.devices} devices, live status and tally", timed(client, "/devices", args.requests)
            )
            report("GET /devices/status", timed(client, "/devices/status", args.requests))
            report("GET /what-we-store (no agent call)", timed(client, "/what-we-store", args.requests))
        for what, call in (("live status", fleet.live_status), ("tally", fleet.dns_tally)):
            seconds = []
            for _ in range(args.requests):
                started = time.perf_counter()
                assert call(database, settings, "c-bench000000000001") is not None
                seconds.append(time.perf_counter() - started)
            report(f"one agent call from this process ({what})", seconds)
        served.should_exit = True
    finally:
        database.dispose()
        ensure_absent(NAME)


if __name__ == "__main__":
    main()
