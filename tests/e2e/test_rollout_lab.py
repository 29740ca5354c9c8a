"""norex rollout on three lab servers: a canary that fails stops the roll-out with its name, and after repair a
rerun finishes the rest; `norex worker` does every converge, from the embedded queue. The servers are made from
the lab's prepared image (NOREX_LAB_IMAGE=prepared, production's prepared snapshot): the roll-out does not depend
on the image, and this is where the control plane's own path to that image is proven."""

from __future__ import annotations

import json
import os
import time

import pytest

from norex.db.database import connect
from norex.db.models import Customer, Server
from norex.demo.processes import Processes, wait_for
from norex.lab.prepared import prepared_dir
from norex.lab.state import servers_dir
from norex.provision import control_plane_id
from norex.provision.lab import LabProvisioner
from tests.conftest import NOREX, build_blocklist, norex, on_server

pytestmark = pytest.mark.lab

CUSTOMERS = ["c-0000000000a1", "c-0000000000a2", "c-0000000000a3"]
TIMEOUT = 600


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Three customers who pay, their servers made and converged by a worker; all removed afterwards."""
    work = tmp_path_factory.mktemp("rollout")
    url = f"sqlite:///{work / 'norex.db'}"
    env = {
        **os.environ,
        "NOREX_DATABASE_URL": url,
        "NOREX_QUEUE_URL": f"sqlite:///{work / 'queue.db'}",
        "NOREX_BACKEND": "lab",
        "NOREX_LAB_IMAGE": "prepared",
        "NOREX_BLOCKLIST_FILE": str(build_blocklist(work, "v1", ["ads.example.test"])),
        "XDG_DATA_HOME": str(work),
    }
    provisioner = LabProvisioner(control_plane_id(url))
    db = connect(url)
    now = int(time.time())
    with db.write() as session:
        for cid in CUSTOMERS:
            session.add(
                Customer(id=cid, stripe_customer_id="cus_" + cid, status="active", desired="present", created_at=now)
            )
    procs = Processes(work, env)
    try:
        procs.start("worker", [NOREX, "worker", "--workers", "2"])

        def all_ready() -> bool:
            procs.check()
            with db.read() as session:
                rows = session.query(Server).all()
            return len(rows) == 3 and all(r.state == "ready" for r in rows)

        wait_for("three converged servers", all_ready, TIMEOUT, interval=2)
        for cid in CUSTOMERS:
            assert (servers_dir() / cid / "lower").read_text().strip() == str(prepared_dir()), cid
        yield {"work": work, "env": env, "db": db, "procs": procs}
    finally:
        procs.stop()
        db.dispose()
        for cid in CUSTOMERS:
            provisioner.destroy(cid)


def rollout(env: dict, *args: str):
    return norex("rollout", "--json", *args, env=env, check=False, timeout=TIMEOUT)


def test_a_failing_canary_stops_the_rollout_and_a_rerun_after_repair_finishes(fleet) -> None:
    env = {**fleet["env"], "NOREX_BLOCKLIST_FILE": str(build_blocklist(fleet["work"], "v2", ["cdn.example.test"]))}
    # The worker runs the new version too (its checkout and settings are the plane's).
    fleet["procs"].stop_one("worker")
    fleet["procs"].start("worker", [NOREX, "worker", "--workers", "2"], env=env)
    with fleet["db"].read() as session:
        order = [s.customer_id for s in session.query(Server).order_by(Server.updated_at, Server.customer_id)]
    canary = order[0]
    on_server(canary, "chmod a-x /usr/bin/python3.11")  # made to fail on purpose: Ansible finds no Python

    started = time.monotonic()
    stopped = rollout(env, "--canary", "1", "--batch", "2", "--max-failures", "0")
    assert stopped.returncode == 1, stopped.stderr
    result = json.loads(stopped.stdout)
    assert result["stopped"] and [b["servers"] for b in result["batches"]] == [[canary]]
    assert list(result["failed"]) == [canary] and result["failed"][canary]  # the worker's one-line reason
    assert result["remaining"] == 3
    assert (
        f"norex: rollout: {canary} failed: " in stopped.stderr
        and "batch 1 (canary): 0 done, 1 failed" in stopped.stderr
    )
    print(f"stopped after the canary in {time.monotonic() - started:.1f} s")

    on_server(canary, "chmod 0755 /usr/bin/python3.11")  # the repair
    started = time.monotonic()
    finished = rollout(env, "--canary", "1", "--batch", "2", "--max-failures", "0")
    assert finished.returncode == 0, finished.stderr
    result = json.loads(finished.stdout)
    # The sweep may have retried the canary once sshd was back: then the version is proven, no canary again.
    assert result["done"] + result["already"] == 3 and result["failed"] == {} and result["remaining"] == 0
    assert [len(b["servers"]) for b in result["batches"]] in ([1, 2], [2])
    print(f"rolled out to 3 servers in {time.monotonic() - started:.1f} s")
    for cid in CUSTOMERS:  # the new list reached every resolver
        assert "cdn.example.test. always_refuse" in on_server(
            cid, "unbound-control -s /run/unbound.ctl list_local_zones"
        )
    again = json.loads(rollout(env).stdout)
    assert again["batches"] == [] and again["already"] == 3
