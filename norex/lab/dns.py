"""The lab internet's authoritative DNS: three NSD instances (root, ``test.``, ``example.test.``).

Zones are DNSSEC-signed with ldnsutils (ECDSAP256SHA256, NSEC). Keys are generated once under
``workdir/keys`` and reused, so the root trust anchor stays stable across rebuilds. The caller starts
each :class:`NsdInstance` (``command()``, foreground) inside the lab namespace.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from norex.lab import plan

ALGORITHM = "ECDSAP256SHA256"  # DNSSEC algorithm 13
SERIAL = 2024010101
TTL = 300  # ordinary records
NS_TTL = 3600  # NS, DS, DNSKEY, name server addresses
SIG_INCEPTION = dt.timedelta(days=1)  # before now
SIG_VALIDITY = dt.timedelta(days=5 * 365)  # after now

ROOT_SERVER = "a.root-servers.test."
TLD_SERVER = "ns1.nic.test."
ZONE_SERVER = "ns1.example.test."


@dataclass(frozen=True)
class NsdInstance:
    """One NSD process serving one zone on one IPv4 and one IPv6 address."""

    zone: str
    address4: str
    address6: str
    config: Path
    pidfile: Path
    tap_socket: Path  # NSD sends a dnstap frame for every query it is asked here
    tap_file: Path  # where fstrm_capture writes them: what this server was asked

    def command(self) -> list[str]:
        """Foreground NSD command line, to be run by the caller inside the lab namespace."""
        return ["nsd", "-d", "-c", str(self.config)]

    def tap_command(self) -> list[str]:
        """The collector of this instance's dnstap stream (runs on the host, before NSD)."""
        return ["fstrm_capture", "-t", "protobuf:dnstap.Dnstap", "-u", str(self.tap_socket), "-w", str(self.tap_file)]

    def fingerprint(self) -> str:
        """Changes whenever the config does, so a lab up restarts an NSD started from an older one."""
        return hashlib.sha256(self.config.read_bytes()).hexdigest()[:16]


@dataclass(frozen=True)
class LabDNS:
    """The built lab DNS: NSD instances, root hints text and the root trust anchor (a DS line)."""

    instances: tuple[NsdInstance, ...]
    root_hints: str
    trust_anchor: str


@dataclass(frozen=True)
class _Zone:
    name: str  # absolute, "." / "test." / "example.test."
    label: str  # file-system name: "root" / "test" / "example.test"
    address4: str
    address6: str
    records: tuple[str, ...]  # zone-file lines without DNSKEY / child DS


def _run(args: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = " ".join((proc.stderr or proc.stdout).split()) or f"exit status {proc.returncode}"
        raise RuntimeError(f"{args[0]} failed: {detail}")
    return proc.stdout


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _one_line(record: str) -> str:
    """A zone-file record with its ldns comment dropped and whitespace collapsed to single spaces."""
    return " ".join(record.split(";", 1)[0].split())


def _key_flags(key_file: Path) -> int:
    fields = _one_line(key_file.read_text()).split()
    return int(fields[fields.index("DNSKEY") + 1])


def _keys(zone: _Zone, keys_root: Path) -> tuple[Path, Path]:
    """The zone's (KSK, ZSK) base paths (no extension), generated on first use."""
    keydir = keys_root / zone.label
    keydir.mkdir(parents=True, exist_ok=True)
    found: dict[int, list[Path]] = {257: [], 256: []}
    for key_file in sorted(keydir.glob("K*.key")):
        if key_file.with_suffix(".private").exists():
            found.setdefault(_key_flags(key_file), []).append(key_file.with_suffix(""))
    if len(found[257]) == 1 and len(found[256]) == 1:
        return found[257][0], found[256][0]
    for stale in keydir.glob("K*"):
        stale.unlink()
    ksk = _run(["ldns-keygen", "-a", ALGORITHM, "-k", zone.name], cwd=keydir).strip()
    zsk = _run(["ldns-keygen", "-a", ALGORITHM, zone.name], cwd=keydir).strip()
    return keydir / ksk, keydir / zsk


def _dnskey(base: Path) -> str:
    owner, _cls, rrtype, *rdata = _one_line(Path(f"{base}.key").read_text()).split()
    return " ".join([owner, str(NS_TTL), "IN", rrtype, *rdata])


def _ds(ksk: Path) -> str:
    """The SHA-256 DS record of a KSK as one zone-file line."""
    return _one_line(_run(["ldns-key2ds", "-n", "-2", f"{ksk}.key"]))


def _zones() -> tuple[_Zone, _Zone, _Zone]:
    soa = f"{NS_TTL} IN SOA {{mname}} hostmaster.{{rname}} {SERIAL} 1800 900 604800 {TTL}"
    root = _Zone(
        ".",
        "root",
        plan.ROOT_NS4,
        plan.ROOT_NS6,
        (
            f". {soa.format(mname=ROOT_SERVER, rname='nic.test.')}",
            f". {NS_TTL} IN NS {ROOT_SERVER}",
            f"{ROOT_SERVER} {NS_TTL} IN A {plan.ROOT_NS4}",
            f"{ROOT_SERVER} {NS_TTL} IN AAAA {plan.ROOT_NS6}",
            f"test. {NS_TTL} IN NS {TLD_SERVER}",
            f"{TLD_SERVER} {NS_TTL} IN A {plan.TLD_NS4}",
            f"{TLD_SERVER} {NS_TTL} IN AAAA {plan.TLD_NS6}",
        ),
    )
    tld = _Zone(
        "test.",
        "test",
        plan.TLD_NS4,
        plan.TLD_NS6,
        (
            f"test. {soa.format(mname=TLD_SERVER, rname='nic.test.')}",
            f"test. {NS_TTL} IN NS {TLD_SERVER}",
            f"{TLD_SERVER} {NS_TTL} IN A {plan.TLD_NS4}",
            f"{TLD_SERVER} {NS_TTL} IN AAAA {plan.TLD_NS6}",
            f"{ROOT_SERVER} {NS_TTL} IN A {plan.ROOT_NS4}",
            f"{ROOT_SERVER} {NS_TTL} IN AAAA {plan.ROOT_NS6}",
            f"example.test. {NS_TTL} IN NS {ZONE_SERVER}",
            f"{ZONE_SERVER} {NS_TTL} IN A {plan.ZONE_NS4}",
            f"{ZONE_SERVER} {NS_TTL} IN AAAA {plan.ZONE_NS6}",
        ),
    )
    leaf = ("www", "ads", "tracker", "malware", "cdn", "a.b.c.deep")
    example = _Zone(
        "example.test.",
        "example.test",
        plan.ZONE_NS4,
        plan.ZONE_NS6,
        (
            f"example.test. {soa.format(mname=ZONE_SERVER, rname='example.test.')}",
            f"example.test. {NS_TTL} IN NS {ZONE_SERVER}",
            f"{ZONE_SERVER} {NS_TTL} IN A {plan.ZONE_NS4}",
            f"{ZONE_SERVER} {NS_TTL} IN AAAA {plan.ZONE_NS6}",
            *(f"{name}.example.test. {TTL} IN A {plan.WEB4}" for name in leaf),
            f"www.example.test. {TTL} IN AAAA {plan.WEB6}",
            f'hello.example.test. {TTL} IN TXT "norex lab"',
        ),
    )
    return root, tld, example


def _sign(zone: _Zone, extra: list[str], zones_dir: Path, keys_dir: Path) -> tuple[Path, Path]:
    """Write and sign the zone; return (signed zone file, KSK base path)."""
    ksk, zsk = _keys(zone, keys_dir)
    lines = [f"$ORIGIN {zone.name}", f"$TTL {TTL}", *zone.records, *extra, _dnskey(ksk), _dnskey(zsk)]
    unsigned = zones_dir / f"{zone.label}.zone"
    signed = zones_dir / f"{zone.label}.zone.signed"
    _write(unsigned, "\n".join(lines) + "\n")
    now = dt.datetime.now(dt.UTC)
    inception = (now - SIG_INCEPTION).strftime("%Y%m%d")
    expiration = (now + SIG_VALIDITY).strftime("%Y%m%d")
    tmp = signed.with_name(f".{signed.name}.tmp")
    _run(["ldns-signzone", "-i", inception, "-e", expiration, "-o", zone.name, "-f", str(tmp),
          str(unsigned), str(ksk), str(zsk)])  # fmt: skip
    os.replace(tmp, signed)
    return signed, ksk


def _nsd_config(zone: _Zone, signed: Path, rundir: Path) -> NsdInstance:
    rundir.mkdir(parents=True, exist_ok=True)
    (rundir / "xfr").mkdir(exist_ok=True)
    config, pidfile = rundir / "nsd.conf", rundir / "nsd.pid"
    identity = {"root": ROOT_SERVER, "test": TLD_SERVER}.get(zone.label, ZONE_SERVER)
    text = f"""\
# lab authoritative DNS for "{zone.name}" (generated by norex.lab.dns; do not edit)
server:
    ip-address: {zone.address4}
    ip-address: {zone.address6}
    ip-freebind: yes
    port: 53
    do-ip4: yes
    do-ip6: yes
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "{rundir}"
    database: ""
    zonelistfile: "{rundir / "zone.list"}"
    xfrdfile: "{rundir / "xfrd.state"}"
    xfrdir: "{rundir / "xfr"}"
    pidfile: "{pidfile}"
    cookie-secret-file: "{rundir / "cookiesecrets.txt"}"
    logfile: "/dev/null"
    verbosity: 0
    identity: "{identity.rstrip(".")}"
    hide-version: yes
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0

remote-control:
    control-enable: no

# The lab's outside observer: every query this server is asked (never an answer)
# goes to fstrm_capture on the host; `norex lab dns-queries` reads them. Lab
# infrastructure only: a customer's server has no such thing.
dnstap:
    dnstap-enable: yes
    dnstap-socket-path: "{rundir / "dnstap.sock"}"
    dnstap-send-identity: no
    dnstap-send-version: no
    dnstap-log-auth-query-messages: yes
    dnstap-log-auth-response-messages: no

zone:
    name: "{zone.name}"
    zonefile: "{signed}"
"""
    _write(config, text)
    proc = subprocess.run(["nsd-checkconf", str(config)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = " ".join((proc.stderr or proc.stdout).split()) or f"exit status {proc.returncode}"
        raise RuntimeError(f"nsd-checkconf rejected {config}: {detail}")
    return NsdInstance(
        zone.name, zone.address4, zone.address6, config, pidfile, rundir / "dnstap.sock", rundir / "queries.fstrm"
    )


def root_hints() -> str:
    """named.root-style hints for the lab root."""
    return (
        "; lab root hints (norex.lab.dns)\n"
        f".                    3600000 IN NS   {ROOT_SERVER}\n"
        f"{ROOT_SERVER} 3600000 IN A    {plan.ROOT_NS4}\n"
        f"{ROOT_SERVER} 3600000 IN AAAA {plan.ROOT_NS6}\n"
    )


def build_lab_dns(workdir: Path) -> LabDNS:
    """Generate keys (once: reuse existing keys in workdir/keys if present so the anchor stays stable),
    write + sign zones, write NSD configs. Idempotent."""
    for tool in ("nsd", "nsd-checkconf", "ldns-keygen", "ldns-signzone", "ldns-key2ds"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found (install the nsd and ldnsutils packages)")
    workdir = workdir.resolve()
    keys_dir, zones_dir = workdir / "keys", workdir / "zones"
    root, tld, example = _zones()

    signed_example, example_ksk = _sign(example, [], zones_dir, keys_dir)
    signed_tld, tld_ksk = _sign(tld, [_ds(example_ksk)], zones_dir, keys_dir)
    signed_root, root_ksk = _sign(root, [_ds(tld_ksk)], zones_dir, keys_dir)

    instances = tuple(
        _nsd_config(zone, signed, workdir / "nsd" / zone.label)
        for zone, signed in ((root, signed_root), (tld, signed_tld), (example, signed_example))
    )
    hints, anchor = root_hints(), _ds(root_ksk)
    _write(workdir / "root.hints", hints)
    _write(workdir / "root.anchor", anchor + "\n")
    return LabDNS(instances=instances, root_hints=hints, trust_anchor=anchor)
