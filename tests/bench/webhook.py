"""Benchmark: Stripe webhook acknowledgement latency under a sustained load, on SQLite and on PostgreSQL.

Run:  .venv/bin/python tests/bench/webhook.py [--rate 200] [--duration 20] [--backends sqlite,postgresql]
Starts `norex serve` (uvicorn, loopback) on a temporary database (a SQLite file; a fresh schema in the test
PostgreSQL from scripts/install.sh, or --postgres-url) with the embedded queue in a temporary folder, and
sends signed events from a loopback load generator at a fixed rate (open loop: each request leaves at its
scheduled time whether or not earlier ones were answered, and its latency counts from that time).
The events are a realistic mix: customer.created, subscription created/updated, invoice.paid, about 5%
redeliveries and some unhandled types. Prints p50/p99/max and errors; asserts nothing (target p99 <= 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

NOREX = str(Path(sys.executable).with_name("norex"))
SECRET = "whsec_bench_" + secrets.token_hex(16)
POSTGRES_URL = os.environ.get(
    "NOREX_TEST_POSTGRES_URL", "postgresql+psycopg://norex_test:norex_test@127.0.0.1:5432/norex_test"
)


def sign(payload: bytes) -> str:
    t = int(time.time())
    mac = hmac.new(SECRET.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def events() -> Iterator[dict]:
    """An endless, realistic stream: each customer signs up, pays, renews; some deliveries repeat."""
    n = 0
    recent: list[dict] = []
    while True:
        n += 1
        cus, sub, t = f"cus_bench{n:08d}", f"sub_bench{n:08d}", int(time.time())
        batch = [
            {"type": "customer.created", "object": {"id": cus, "object": "customer", "email": f"b{n}@example.org"}},
            {"type": "customer.subscription.created", "object": {"id": sub, "customer": cus, "status": "incomplete"}},
            {"type": "customer.subscription.updated", "object": {"id": sub, "customer": cus, "status": "active"}},
            {"type": "invoice.paid", "object": {"id": f"in_{n}", "customer": cus, "subscription": sub}},
            {"type": "charge.succeeded", "object": {"id": f"ch_{n}", "customer": cus}},
        ]
        for i, item in enumerate(batch):
            evt = {
                "id": f"evt_bench{n:08d}{i}",
                "object": "event",
                "type": item["type"],
                "created": t + i,
                "data": {"object": item["object"]},
            }
            recent = [*recent[-50:], evt]
            yield evt
            if secrets.randbelow(100) < 5:
                yield recent[secrets.randbelow(len(recent))]  # a redelivery


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def sqlite_file(folder: Path) -> Iterator[str]:
    yield f"sqlite:///{folder / 'norex.db'}"


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    schema = "bench_" + secrets.token_hex(4)
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextmanager
def server(database_url: str, workdir: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOREX_")}
    env |= {"NOREX_DATABASE_URL": database_url, "NOREX_STRIPE_WEBHOOK_SECRET": SECRET, "XDG_DATA_HOME": str(workdir)}
    proc = subprocess.Popen([NOREX, "serve", "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/healthz").raise_for_status()
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"norex serve did not start: {proc.communicate()[1].strip()}") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        err = proc.communicate(timeout=30)[1]
        lines = [line for line in err.splitlines() if not line.startswith("norex: Stripe webhook on")]
        if lines:
            print("  server stderr: " + " | ".join(lines[-5:]))


class Connections:
    """Keep-alive HTTP/1.1 connections over raw asyncio streams: a load generator far lighter than any client
    library, so that on a small machine the figures describe the server, not the generator."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, payload: bytes, signature: str) -> int:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nStripe-Signature: {signature}\r\n\r\n"
        ).encode()
        while True:
            reused = bool(self.idle)
            conn = self.idle.pop() if reused else await asyncio.open_connection("127.0.0.1", self.port)
            reader, writer = conn
            writer.write(head + payload)
            status_line = await reader.readline()
            if status_line or not reused:
                break
            writer.close()  # the server closed an idle keep-alive connection: resend on a new one, as clients do
        status = int(status_line.split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        self.idle.append(conn)
        return status

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def load(port: int, rate: float, duration: float, warmup: float) -> dict:
    stream = events()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    pool = Connections(port)

    async def one(scheduled: float, measured: bool) -> None:
        payload = json.dumps(next(stream)).encode()
        try:
            status = await pool.post("/stripe/webhook", payload, sign(payload))
            outcome = "ok" if status == 200 else f"HTTP {status}"
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
            outcome = type(exc).__name__
        if measured:
            latencies.append(time.perf_counter() - scheduled)
            if outcome != "ok":
                errors[outcome] = errors.get(outcome, 0) + 1

    tasks = []
    start = time.perf_counter()
    total = int((warmup + duration) * rate)
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled, i >= warmup * rate)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    pool.close()
    ms = sorted(x * 1000 for x in latencies)
    return {
        "sent": len(ms),
        "rate": total / elapsed,
        "errors": errors,
        "p50": statistics.median(ms),
        "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "max": ms[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200, help="events per second")
    parser.add_argument("--duration", type=float, default=20, help="measured seconds (after 2 s of warm-up)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    args = parser.parse_args()
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix="norex-bench-") as tmp:
            work = Path(tmp)
            ctx = sqlite_file(work) if backend == "sqlite" else postgres_schema(args.postgres_url)
            with ctx as url, server(url, work) as base:
                r = asyncio.run(load(int(base.rsplit(":", 1)[1]), args.rate, args.duration, warmup=2))
        errors = ", ".join(f"{k} x{v}" for k, v in r["errors"].items()) or "none"
        print(
            f"{backend}: {r['sent']} events at {r['rate']:.0f}/s over {args.duration:.0f} s: "
            f"ack latency p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, max {r['max']:.1f} ms; errors: {errors}"
        )


if __name__ == "__main__":
    main()
