"""`norex doctor` as ops run it: the real command, each backend, secrets never shown, exit 5 on a problem."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from norex.db import Database
from norex.lab.host_tools import run_checks as lab_checks
from norex.redact import without_credentials

NOREX = str(Path(sys.executable).with_name("norex"))
TOKEN = "hcloud-secret-" + "t" * 50
PASSPHRASE = "a passphrase nobody may see"


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any norex, Pulumi or Hetzner setting, and a home without ~/.pulumi."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("NOREX_", "PULUMI_")) and k != "HCLOUD_TOKEN"}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {**keep, "HOME": str(home), "XDG_DATA_HOME": str(tmp_path / "data"), **extra}


def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'norex.db'}"
    db = Database(url)
    db.upgrade()
    db.dispose()
    return url


def doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NOREX, "doctor", *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def lines(text: str) -> dict[str, str]:
    """{check name: status} from the text report."""
    found = {}
    for line in text.splitlines():
        status, rest = line.split(None, 1)
        found[rest[:25].strip()] = status
    return found


@pytest.fixture
def no_pulumi_cli() -> None:
    # The project's machines cannot have the Pulumi CLI (it downloads itself); these tests rely on that.
    assert shutil.which("pulumi") is None, "a Pulumi CLI is on PATH: these tests expect a machine without one"


def test_the_lab_backend_needs_nothing_of_pulumi_or_hetzner(tmp_path: Path, no_pulumi_cli: None):
    env = environment(tmp_path, NOREX_BACKEND="lab", NOREX_DATABASE_URL=database(tmp_path))
    proc = doctor(env)
    report = lines(proc.stdout)
    assert report["backend"] == "ok" and report["database"] == "ok" and report["queue"] == "ok"
    assert f"sqlite:///{tmp_path / 'norex.db'}, schema current" in proc.stdout
    # Absent, and reported, but not this backend's problem.
    for name in ("pulumi CLI", "HCLOUD_TOKEN", "PULUMI_CONFIG_PASSPHRASE", "hcloud settings"):
        assert report[name] == "-", name
    assert "(not needed by NOREX_BACKEND=lab)" in proc.stdout
    if all(c.ok for c in lab_checks()):  # this machine runs the lab
        assert (proc.returncode, proc.stderr, report["lab"]) == (0, "", "ok")
    else:
        assert proc.returncode == 5 and proc.stderr.startswith("norex: doctor: lab: missing")


def test_the_hcloud_backend_reports_the_missing_cli_and_token_one_line_each(tmp_path: Path, no_pulumi_cli: None):
    env = environment(tmp_path, NOREX_BACKEND="hcloud", NOREX_DATABASE_URL=database(tmp_path))
    proc = doctor(env)
    assert proc.returncode == 5
    problems = proc.stderr.splitlines()
    assert problems == [
        "norex: doctor: pulumi CLI: the Pulumi CLI is not installed: install it on the worker with Pulumi's "
        "installer (norex looks on PATH and in ~/.pulumi/bin)",
        "norex: doctor: HCLOUD_TOKEN: not set: a Hetzner Cloud API token (read/write)",
        "norex: doctor: PULUMI_CONFIG_PASSPHRASE: not set, nor PULUMI_CONFIG_PASSPHRASE_FILE: no stack can be used",
        "norex: doctor: hcloud settings: NOREX_OPS_CIDRS: at least one CIDR is required; "
        "NOREX_HCLOUD_OPS_SSH_KEY_IDS: at least one ops SSH key id is required (`hcloud ssh-key list`)",
    ]
    report = lines(proc.stdout)
    assert report["pulumi CLI"] == report["HCLOUD_TOKEN"] == "MISSING"
    assert report["database"] == "ok" and report["state backend"] == "ok"
    assert f"file://{tmp_path}/data/norex/pulumi/state" in proc.stdout
    assert not (tmp_path / "data").exists()  # the doctor looks, it makes nothing


def fake_cli(tmp_path: Path, version: str = "v3.210.0") -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "pulumi"
    script.write_text(f"#!/bin/sh\necho {version}\n")
    script.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def hcloud_environment(tmp_path: Path, cli_version: str = "v3.210.0") -> dict[str, str]:
    return environment(
        tmp_path,
        PATH=fake_cli(tmp_path, cli_version),
        NOREX_BACKEND="hcloud",
        NOREX_DATABASE_URL=database(tmp_path),
        HCLOUD_TOKEN=TOKEN,
        PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
        NOREX_OPS_CIDRS="203.0.113.0/24,2001:db8::/48",
        NOREX_CONTROL_PLANE_CIDRS="198.51.100.7/32",
        NOREX_HCLOUD_OPS_SSH_KEY_IDS="4711,4712",
    )


def test_the_hcloud_backend_passes_when_everything_is_there_and_shows_no_secret(tmp_path: Path):
    proc = doctor(hcloud_environment(tmp_path))
    assert (proc.returncode, proc.stderr) == (0, "")
    report = lines(proc.stdout)
    for name in ("pulumi CLI", "HCLOUD_TOKEN", "PULUMI_CONFIG_PASSPHRASE", "state backend", "hcloud settings"):
        assert report[name] == "ok", name
    assert f"v3.210.0 ({tmp_path / 'bin' / 'pulumi'})" in proc.stdout
    assert "cx23 in fsn1, image debian-12, 2 ops and 1 control-plane CIDR(s), 2 SSH key id(s)" in proc.stdout
    assert TOKEN not in proc.stdout and PASSPHRASE not in proc.stdout


def test_json_for_scripts(tmp_path: Path):
    proc = doctor(hcloud_environment(tmp_path, cli_version="v3.50.0"), "--json")
    assert proc.returncode == 5 and proc.stderr == ""
    data = json.loads(proc.stdout)
    assert (data["ok"], data["backend"]) == (False, "hcloud")
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["HCLOUD_TOKEN"] == {"name": "HCLOUD_TOKEN", "ok": True, "required": True, "detail": "set"}
    assert checks["lab"]["required"] is False
    assert data["problems"] == [
        "pulumi CLI: the Pulumi CLI cannot be used: Minimum version requirement failed. The minimum CLI version "
        "requirement is 3.100.0, your current CLI version is 3.50.0. Please update the Pulumi CLI."
    ]
    assert TOKEN not in proc.stdout and PASSPHRASE not in proc.stdout


def test_unreachable_database_and_queue_are_problems_and_urls_lose_their_credentials(tmp_path: Path):
    env = environment(
        tmp_path,
        NOREX_BACKEND="lab",
        NOREX_DATABASE_URL="postgresql://norex:dbsecret@127.0.0.1:1/norex",
        NOREX_QUEUE_URL="redis://:queuesecret@127.0.0.1:1/0",
    )
    proc = doctor(env, "--json")
    data = json.loads(proc.stdout)
    checks = {c["name"]: c for c in data["checks"]}
    assert proc.returncode == 5 and not checks["database"]["ok"] and not checks["queue"]["ok"]
    assert checks["database"]["detail"].startswith("postgresql+psycopg://norex:***@127.0.0.1:1/norex")
    assert checks["queue"]["detail"].startswith("redis://127.0.0.1:1/0: ")
    assert "dbsecret" not in proc.stdout and "queuesecret" not in proc.stdout


def test_a_database_not_made_yet_is_fine_and_is_not_made(tmp_path: Path):
    target = tmp_path / "later" / "norex.db"
    proc = doctor(environment(tmp_path, NOREX_DATABASE_URL=f"sqlite:///{target}"), "--json")
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["database"]["ok"] and "not created yet" in checks["database"]["detail"]
    assert not target.exists() and not target.parent.exists()


def test_a_bad_setting_is_one_line_exit_2(tmp_path: Path):
    proc = doctor(environment(tmp_path, NOREX_PULUMI_BACKEND_URL="https://api.example.com"))
    assert proc.returncode == 2
    assert proc.stderr == (
        "norex: error: NOREX_PULUMI_BACKEND_URL: expected file:///PATH or s3://BUCKET (a self-managed Pulumi "
        "state backend)\n"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("s3://bucket/norex?region=eu-central-1", "s3://bucket/norex?region=eu-central-1"),
        ("s3://key:secret@bucket/norex", "s3://bucket/norex"),
        ("redis://:pw@10.0.0.5:6379/0", "redis://10.0.0.5:6379/0"),
        ("file:///var/lib/norex/pulumi", "file:///var/lib/norex/pulumi"),
    ],
)
def test_without_credentials(url: str, shown: str):
    assert without_credentials(url) == shown
