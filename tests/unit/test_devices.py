"""Devices in the control plane: names and labels, addresses, keys brought by the customer, QR codes, and what
the CLI prints (never an endpoint address or a time). On SQLite and PostgreSQL; the server here has no agent
yet, so a change queues a converge (the lab tests push to a real agent)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from norex.db.models import Customer, Device, Server
from norex.devices import store
from norex.devices.config import keypair
from norex.devices.names import ADJECTIVES, NOUNS
from norex.errors import AlreadyExists, NorexError, NotFound, UsageError
from tests.unit.control_support import BACKENDS, database

NOREX = str(Path(sys.executable).with_name("norex"))
CID = "c-00000000000000d1"
SERVER_KEY = keypair()[1]


def ready(db, cid: str = CID) -> None:
    now = int(time.time())
    with db.write() as session:
        session.add(Customer(id=cid, stripe_customer_id="cus_" + cid, desired="present", created_at=now))
        session.add(
            Server(
                customer_id=cid,
                backend="lab",
                name=cid,
                state="ready",
                ipv4="198.18.1.9",
                public_key=SERVER_KEY,
                updated_at=now,
            )
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_names_labels_and_addresses(backend, tmp_path) -> None:
    with database(backend, tmp_path) as db:
        ready(db)
        first = store.add(db, CID)
        words = first.name.lower().split(" ")
        assert len(words) == 2 and words[0] in ADJECTIVES and words[1] in NOUNS
        anna = store.add(db, CID, "Anna's iPhone")
        assert anna.name == "Anna's iPhone" and re.fullmatch(r"d-[0-9a-f]{12}", anna.id)
        assert (first.address4, anna.address4) == ("10.66.0.2", "10.66.0.3")
        with pytest.raises(AlreadyExists):
            store.add(db, CID, "Anna's iPhone")
        for bad in ("", "a\nb", "x" * 65, "tab\there", "rtl\u202eoverride"):
            with pytest.raises(UsageError):
                store.add(db, CID, bad)
        # A removed device's address is given again only once it is gone; the others keep theirs.
        store.remove(db, CID, first.id)
        third = store.add(db, CID, "laptop")
        assert third.address4 == "10.66.0.2" and store.list_devices(db, CID)[1]["address4"] == "10.66.0.3"
        store.rename(db, CID, "laptop", "Büro-Laptop")
        with pytest.raises(AlreadyExists):
            store.rename(db, CID, "Büro-Laptop", "Anna's iPhone")
        store.remove(db, CID, "Anna's iPhone")
        with pytest.raises(NotFound):
            store.remove(db, CID, "Anna's iPhone")
        assert [d["name"] for d in store.list_devices(db, CID)] == ["Büro-Laptop"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_public_key_brought_by_the_customer(backend, tmp_path) -> None:
    with database(backend, tmp_path) as db:
        ready(db)
        private, public = keypair()
        new = store.add(db, CID, "phone", public_key=public)
        assert new.public_key == public and private not in new.config
        assert store.PRIVATE_KEY_PLACEHOLDER in new.config
        with pytest.raises(AlreadyExists):
            store.add(db, CID, "again", public_key=public)
        with pytest.raises(UsageError, match="not a WireGuard public key"):
            store.add(db, CID, "bad", public_key="A" * 43)
        with pytest.raises(AlreadyExists):
            store.add(db, CID, "server", public_key=SERVER_KEY)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_full_subnet_is_a_clear_error(backend, tmp_path) -> None:
    with database(backend, tmp_path) as db:
        ready(db)
        now = int(time.time())
        with db.write() as session:
            for index in range(2, 255):
                session.add(
                    Device(
                        id=f"d-{index:012x}",
                        customer_id=CID,
                        name=f"n{index}",
                        index=index,
                        public_key=f"k{index}",
                        ipv4=f"10.66.0.{index}",
                        ipv6=f"fd::{index:x}",
                        created_at=now,
                    )
                )
        with pytest.raises(NorexError, match="as many as one tunnel subnet holds"):
            store.add(db, CID, "one too many")


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NOREX_")},
        "NOREX_DATABASE_URL": f"sqlite:///{tmp_path / 'norex.db'}",
        "NOREX_QUEUE_URL": f"sqlite:///{tmp_path / 'queue.db'}",
        "XDG_DATA_HOME": str(tmp_path / "xdg"),
    }
    return subprocess.run([NOREX, "devices", *args], capture_output=True, text=True, env=env, timeout=60)


def test_the_cli_prints_the_config_once_and_lists_without_endpoint_or_time(tmp_path) -> None:
    with database("sqlite", tmp_path) as db:
        ready(db)
    added = cli(tmp_path, "add", CID, "Anna's iPhone", "--json")
    assert added.returncode == 0, added.stderr
    new = json.loads(added.stdout)
    assert set(new) == {"id", "name", "address4", "address6", "public_key", "config"}
    private = re.search(r"PrivateKey = (\S+)", new["config"]).group(1)
    qr = tmp_path / "phone.svg"
    shown = cli(tmp_path, "add", CID, "--qr", "--qr-file", str(qr))
    assert shown.returncode == 0, shown.stderr
    assert ("[Interface]" in shown.stdout and "█" in shown.stdout) or "▀" in shown.stdout
    assert qr.read_text().lstrip().startswith(("<?xml", "<svg")) and qr.stat().st_mode & 0o777 == 0o600
    for args in (["list", CID, "--json"], ["list", CID]):
        listed = cli(tmp_path, *args)
        assert listed.returncode == 0, listed.stderr
        text = listed.stdout
        assert "Anna's iPhone" in text and private not in text
        assert "198.18.1.9" not in text and "endpoint" not in text.lower()
        assert not re.search(r"\b1[0-9]{9}\b", text) and not re.search(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}", text)
    rows = json.loads(cli(tmp_path, "list", CID, "--json").stdout)
    assert [r["online"] for r in rows] == [None, None]  # no agent to ask yet: unknown, not an error
    assert "unknown" in cli(tmp_path, "list", CID).stdout
    renamed = cli(tmp_path, "rename", CID, "Anna's iPhone", "Anna's old iPhone")
    assert renamed.returncode == 0, renamed.stderr
    removed = cli(tmp_path, "remove", CID, new["id"])
    assert removed.returncode == 0 and "a converge is queued" in removed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", CID, "bad\u0007name"], "may not contain"),
        (["add", CID, "x" * 65], "at most 64"),
        (["add", CID, "--public-key", "nope"], "not a WireGuard public key"),
        (["add", CID, "--qr-file", "code.jpg"], "must end in .svg or .png"),
        (["add", "c-nobody", "phone"], "no customer"),
        (["remove", CID, "ghost"], "has no device"),
    ],
)
def test_bad_input_is_one_line_and_harms_nothing(tmp_path, args, message) -> None:
    with database("sqlite", tmp_path) as db:
        ready(db)
        store.add(db, CID, "kept")
    out = cli(tmp_path, *args)
    assert out.returncode != 0 and message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    with database("sqlite", tmp_path) as db:
        assert [d["name"] for d in store.list_devices(db, CID)] == ["kept"]
