"""build_lab_dns against the real tools: nsd-checkconf, ldns-verify-zone, ldns-key2ds."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from norex.lab import plan
from norex.lab.dns import LabDNS, build_lab_dns

ZONES = {
    ".": (plan.ROOT_NS4, plan.ROOT_NS6),
    "test.": (plan.TLD_NS4, plan.TLD_NS6),
    "example.test.": (plan.ZONE_NS4, plan.ZONE_NS6),
}


def run(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def words(line: str) -> list[str]:
    return line.split(";", 1)[0].split()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("labdns")


@pytest.fixture(scope="module")
def lab(workdir: Path) -> LabDNS:
    return build_lab_dns(workdir)


def zonefile(lab: LabDNS, zone: str) -> Path:
    instance = next(i for i in lab.instances if i.zone == zone)
    return Path(run("nsd-checkconf", "-z", zone, "-o", "zonefile", str(instance.config)).strip())


def records(path: Path, owner: str, rrtype: str) -> list[list[str]]:
    rows = (words(line) for line in path.read_text().splitlines())
    return [row for row in rows if len(row) > 3 and row[0] == owner and row[3] == rrtype]


def ds_of_ksk(signed: Path, zone: str, scratch: Path) -> str:
    (ksk,) = (row for row in records(signed, zone, "DNSKEY") if row[4] == "257")
    key_file = scratch / "ksk.key"
    key_file.write_text(" ".join(ksk) + "\n")
    return " ".join(run("ldns-key2ds", "-n", "-2", str(key_file)).split())


def test_instances_and_configs(lab: LabDNS) -> None:
    assert [i.zone for i in lab.instances] == list(ZONES)
    for instance in lab.instances:
        assert (instance.address4, instance.address6) == ZONES[instance.zone]
        assert instance.command() == ["nsd", "-d", "-c", str(instance.config)]
        run("nsd-checkconf", str(instance.config))
        addresses = run("nsd-checkconf", "-o", "ip-address", str(instance.config)).split()
        assert addresses == [instance.address4, instance.address6]
        assert run("nsd-checkconf", "-o", "pidfile", str(instance.config)).strip() == str(instance.pidfile)
        assert run("nsd-checkconf", "-o", "username", str(instance.config)).strip() == ""
    assert len({i.pidfile for i in lab.instances}) == 3


def test_zones_verify(lab: LabDNS) -> None:
    for zone in ZONES:
        out = run("ldns-verify-zone", str(zonefile(lab, zone)))
        assert "Zone is verified and complete" in out


def test_trust_anchor_is_root_ksk(lab: LabDNS, tmp_path: Path) -> None:
    anchor = words(lab.trust_anchor)
    assert anchor[:4] == [".", "3600", "IN", "DS"]
    assert anchor[5:7] == ["13", "2"]
    assert " ".join(anchor) == ds_of_ksk(zonefile(lab, "."), ".", tmp_path)


def test_delegations_carry_child_ds(lab: LabDNS, tmp_path: Path) -> None:
    for parent, child in ((".", "test."), ("test.", "example.test.")):
        (ds,) = records(zonefile(lab, parent), child, "DS")
        assert " ".join(ds) == ds_of_ksk(zonefile(lab, child), child, tmp_path)


def test_example_zone_content(lab: LabDNS) -> None:
    signed = zonefile(lab, "example.test.")
    assert records(signed, "www.example.test.", "AAAA")[0][4] == plan.WEB6
    for name in ("www", "ads", "tracker", "malware", "cdn", "a.b.c.deep"):
        assert records(signed, f"{name}.example.test.", "A")[0][4] == plan.WEB4
    assert " ".join(records(signed, "hello.example.test.", "TXT")[0][4:]) == '"norex lab"'


def test_root_hints(lab: LabDNS) -> None:
    rows = [words(line) for line in lab.root_hints.splitlines() if words(line)]
    assert [(r[0], r[-2], r[-1]) for r in rows] == [
        (".", "NS", "a.root-servers.test."),
        ("a.root-servers.test.", "A", plan.ROOT_NS4),
        ("a.root-servers.test.", "AAAA", plan.ROOT_NS6),
    ]


def test_rebuild_keeps_keys(lab: LabDNS, workdir: Path) -> None:
    again = build_lab_dns(workdir)
    assert again.trust_anchor == lab.trust_anchor
    assert again.instances == lab.instances
    run("ldns-verify-zone", str(zonefile(again, ".")))
