"""Benchmark: one reconcile sweep over 10,000 customers, with no remote call per customer.

    .venv/bin/python tests/bench/reconcile.py [--customers 10000]

Runs on a temporary SQLite file and on the test PostgreSQL database that scripts/install.sh makes, with
the real lab backend's listing (it reads the lab's records; no server is made). Four fifths of the
customers want a server and the lab holds none of them, so they all count as drifted: the worst case
for the list the sweep hands to the queue. Target: <= 30 s. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import insert

from norex.db.models import Customer, Server
from norex.jobs.reconcile import sweep
from norex.provision import control_plane_id
from norex.provision.lab import LabProvisioner
from norex.settings import load_settings
from tests.unit.control_support import database


def fill(db, count: int) -> None:
    now = int(time.time())
    customers, servers = [], []
    for n in range(count):
        cid = f"c-{n:016x}"
        present = n % 5 != 4
        customers.append(
            {
                "id": cid,
                "stripe_customer_id": f"cus_bench{n}",
                "subscription_id": f"sub_bench{n}",
                "status": "active" if present else "canceled",
                "status_since": now,
                "desired": "present" if present else "absent",
                "erase_requested": False,
                "created_at": now,
            }
        )
        if present or n % 10 == 9:
            state = "converging" if n % 50 == 0 else "ready"
            servers.append({"customer_id": cid, "backend": "lab", "name": cid, "state": state, "updated_at": now})
    with db.write() as session:
        session.execute(insert(Customer), customers)
        session.execute(insert(Server), servers)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=10_000)
    args = parser.parse_args()
    for backend in ("sqlite", "postgresql"):
        with tempfile.TemporaryDirectory() as tmp, database(backend, Path(tmp)) as db:
            fill(db, args.customers)
            settings = load_settings(database_url=db.url)
            runs = []
            for _ in range(3):
                started = time.monotonic()
                result = sweep(db, settings, LabProvisioner(control_plane_id(db.url)))
                runs.append(time.monotonic() - started)
            print(
                f"{backend}: sweep over {result.customers} customers: best {min(runs):.2f} s, "
                f"worst {max(runs):.2f} s ({len(result.drifted)} drifted, {len(result.orphans)} orphans)"
            )


if __name__ == "__main__":
    main()
