"""`norex audit` on the shared converged lab server: every check passes, the audit changes nothing on the server
(every file of its writable layer hashed before and after, every unit's state), the signed report verifies
with OpenSSL-made keys, and each kind of tampering is caught, then repaired."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import norex, on_server
from tests.unit.test_audit_evidence import openssl_keypair

pytestmark = pytest.mark.lab

# What each kind of tampering does on the server, how it is undone, and the check that must catch it.
TAMPERING = {
    "journald.settings": (
        "mkdir -p /etc/systemd/journald.conf.d && printf '[Journal]\\nStorage=persistent\\n'"
        " > /etc/systemd/journald.conf.d/zz-tamper.conf",
        "rm -f /etc/systemd/journald.conf.d/zz-tamper.conf",
    ),
    "capture.no_recording_rules": (
        "nft add table inet tamper && nft add chain inet tamper in '{ type filter hook input priority 0 ; }'"
        " && nft add rule inet tamper in log prefix tamper",
        "nft delete table inet tamper",
    ),
    "resolver.records_nothing": (
        "unbound-control set_option log-queries: yes",
        "unbound-control set_option log-queries: no",
    ),
    "capture.no_tools": (
        "printf '#!/bin/sh\\n' > /usr/local/bin/tcpdump && chmod 755 /usr/local/bin/tcpdump",
        "rm -f /usr/local/bin/tcpdump",
    ),
    "daemons.no_syslog_audit_accounting": (
        "cp /usr/bin/sleep /run/rsyslogd && systemd-run --unit=tamper-syslog /run/rsyslogd infinity",
        "systemctl stop tamper-syslog && rm -f /run/rsyslogd",
    ),
    "agent.no_request_logs": (
        "cp -p /etc/norex-agent/agent.json /root/agent.json.orig && python3 -c \"import json; p='/etc/norex-agent/"
        "agent.json'; c=json.load(open(p)); c['access_log']='/var/log/agent-access.log'; json.dump(c, open(p, 'w'))\"",
        "mv /root/agent.json.orig /etc/norex-agent/agent.json",
    ),
}


def audit(name: str, *args: str, check: bool = False) -> tuple[int, list[dict]]:
    proc = norex("audit", name, "--json", *args, check=check)
    return proc.returncode, json.loads(proc.stdout)


def verdicts(report: dict) -> dict[str, str]:
    return {c["id"]: c["verdict"] for c in report["checks"]}


def writable_layer(name: str) -> dict[str, str]:
    disk = Path(norex("lab", "disk", name).stdout.strip())
    digests = {}
    for folder, _, files in os.walk(disk):
        for file in files:
            path = Path(folder) / file
            if path.is_symlink():
                digests[str(path.relative_to(disk))] = "-> " + os.readlink(path)
            elif path.is_file():
                digests[str(path.relative_to(disk))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def unit_states(name: str) -> set[str]:
    out = on_server(name, "systemctl list-units --all --plain --no-legend --no-pager")
    # A login makes a session scope (and the user's manager) for each SSH connection: those come and go.
    return {line for line in out.splitlines() if line and not line.split()[0].startswith(("session-", "user"))}


def test_a_converged_server_passes_every_check_and_the_audit_changes_nothing(converged_server, tmp_path):
    name = converged_server["name"]
    files, units = writable_layer(name), unit_states(name)
    key, pub = openssl_keypair(tmp_path)
    started = time.monotonic()
    rc, (report,) = audit(name, "--out", str(tmp_path / "out"), "--sign", str(key))
    print(f"audit of one lab server: {time.monotonic() - started:.1f} s, {len(report['checks'])} checks")
    failed = {c["id"]: f"{c['reason']}: {c['evidence']}" for c in report["checks"] if c["verdict"] == "fail"}
    assert rc == 0 and not failed, failed
    assert report["summary"]["pass"] >= 25
    assert report["server"]["machine_id"] == on_server(name, "cat /etc/machine-id").strip()
    assert writable_layer(name) == files
    assert unit_states(name) == units
    verified = norex("audit", "verify", str(tmp_path / "out" / name), "--key", str(pub), "--json")
    assert json.loads(verified.stdout)["files_verified"] == 3
    md = (tmp_path / "out" / name / "report.md").read_text()
    (tmp_path / "out" / name / "report.md").write_text(md.replace("pass", "PASS", 1))
    tampered = norex("audit", "verify", str(tmp_path / "out" / name), "--key", str(pub), check=False)
    assert tampered.returncode == 1 and "report.md does not match" in tampered.stderr


def test_each_kind_of_tampering_is_caught_and_a_repaired_server_passes(converged_server):
    name = converged_server["name"]
    try:
        for make, _ in TAMPERING.values():
            on_server(name, make)
        rc, (report,) = audit(name)
        seen = verdicts(report)
        assert rc == 1
        assert {check: seen[check] for check in TAMPERING} == dict.fromkeys(TAMPERING, "fail")
    finally:
        for _, undo in TAMPERING.values():
            on_server(name, undo, check=False)
    rc, (report,) = audit(name)
    assert rc == 0, {c["id"]: c["reason"] for c in report["checks"] if c["verdict"] == "fail"}


def test_an_auditor_with_only_an_inventory_gets_the_same_verdicts_and_no_drift(converged_server, tmp_path):
    """The inventory the server was converged from (`norex lab inventory` and the converge's variables), as an
    auditor with SSH access would hold it: no control plane, no database. With it the audit also runs
    site.yml in check mode: nothing would change, and nothing did."""
    name = converged_server["name"]
    inventory = yaml.safe_load(norex("lab", "inventory").stdout)
    inventory["all"]["vars"].update(converged_server["vars"])
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    files, units = writable_layer(name), unit_states(name)
    started = time.monotonic()
    rc, (report,) = audit(name, "-i", str(path))
    print(f"audit with the drift check: {time.monotonic() - started:.1f} s")
    # site.yml in check mode changes nothing either (the agent's certificate tasks, the package transaction).
    assert writable_layer(name) == files
    assert unit_states(name) == units
    seen = verdicts(report)
    assert rc == 0, {c["id"]: c["evidence"] for c in report["checks"] if c["verdict"] == "fail"}
    assert seen["drift.site_yml"] == "pass" and seen["wireguard.interface"] == "pass"
    assert "the same: yes" in next(c["evidence"] for c in report["checks"] if c["id"] == "wireguard.interface")
    bad = norex("audit", "nosuch", "-i", str(path), check=False)
    assert bad.returncode == 2 and "is not a host of vpn_servers" in bad.stderr
