"""`norex audit`: check, read-only, that servers keep the no-logs promise; write and verify the evidence.

    norex audit TARGET... [-i INVENTORY] [--json] [--out DIR] [--sign KEY]
    norex audit verify REPORT --key PUB [--checkout DIR]
    norex audit status [--json]

TARGET is a lab server, a host of the inventory given with -i (an auditor's: SSH access and this repository
are all it needs), or `all`. Exit status 1 when any check fails or a server could not be audited.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from norex.errors import UsageError

VERDICT_MARK = {"pass": "pass", "fail": "FAIL", "not applicable": "n/a"}


class AuditGroup(click.Group):
    """`norex audit TARGET...` runs the audit; `verify` and `status` are its subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=AuditGroup)
def audit() -> None:
    """Check servers against the no-logs promise, read-only, and verify the reports.

    \b
    norex audit TARGET... [-i INVENTORY] [--json] [--out DIR] [--sign KEY]
    norex audit verify REPORT --key PUB [--checkout DIR] [--json]
    norex audit status [--json]

    TARGET is a lab server, a host of the inventory's vpn_servers (-i), or `all`. Exits 1 when a check
    fails or a server could not be audited.
    """


def _lab_targets(names: tuple[str, ...]) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    from norex.lab import inventory as lab_inventory
    from norex.lab.state import all_servers, validate_name
    from norex.settings import load_settings
    from norex.tunnel import TUNNEL

    servers = {r.name: r for r in all_servers() if r.state == "created"}
    wanted = sorted(servers) if names == ("all",) else [validate_name(n) for n in names]
    missing = [n for n in wanted if n not in servers]
    if missing:
        raise UsageError(f"no running lab server named {missing[0]!r} (give -i INVENTORY for other servers)")
    if not wanted:
        raise UsageError("no lab server is running")
    hosts = {n: {**lab_inventory.shared_connection(), **lab_inventory.host_connection(servers[n])} for n in wanted}
    inventory = {"all": {"children": {"vpn_servers": {"hosts": hosts}}}}
    settings = load_settings()
    extravars = {
        "norex_control_plane_cidrs": list(lab_inventory.CONTROL_PLANE_CIDRS),
        "firewall_agent_port": settings.agent_port,
        **TUNNEL.role_variables(),
    }
    return inventory, wanted, extravars


def _inventory_targets(inventory: Path, names: tuple[str, ...]) -> tuple[str, list[str]]:
    if not inventory.is_file():
        raise UsageError(f"no inventory file {inventory}")
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    manager = InventoryManager(loader=DataLoader(), sources=[str(inventory)])
    known = sorted(h.name for h in manager.get_hosts("vpn_servers"))
    wanted = known if names == ("all",) else list(names)
    missing = [n for n in wanted if n not in known]
    if missing:
        raise UsageError(f"{missing[0]!r} is not a host of vpn_servers in {inventory}")
    if not wanted:
        raise UsageError(f"{inventory} has no host in vpn_servers")
    return str(inventory), wanted


def _summary_line(name: str, report) -> str:
    s = report.summary()
    return f"{name}: {s['pass']} pass, {s['fail']} fail, {s['not applicable']} not applicable"


@audit.command(name="run", hidden=True)
@click.argument("targets", nargs=-1, required=True)
@click.option("-i", "--inventory", type=click.Path(path_type=Path), help="an Ansible inventory; TARGETs are its hosts")
@click.option("--json", "as_json", is_flag=True, help="print the reports as JSON")
@click.option("--out", type=click.Path(path_type=Path), help="write DIR/SERVER/report.{json,md,html} and the Statement")
@click.option("--sign", "key_path", type=click.Path(path_type=Path), help="sign the Statement with this Ed25519 key")
def run(targets: tuple[str, ...], inventory: Path | None, as_json: bool, out: Path | None, key_path: Path | None):
    """Audit TARGET... (lab servers, hosts of -i INVENTORY, or `all`)."""
    from norex.audit import bundle
    from norex.audit.runner import drift_check, run_audit, run_drift
    from norex.audit.signing import load_private_key
    from norex.settings import load_settings

    if "all" in targets and len(targets) > 1:
        raise UsageError("give `all` alone, or server names")
    key = load_private_key(key_path) if key_path else None
    if key_path and not out:
        raise UsageError("--sign writes a signed Statement: give --out DIR too")
    if inventory is not None:
        source, names = _inventory_targets(inventory, targets)
        with ThreadPoolExecutor(2) as pool:  # the drift check (site.yml in check mode) beside the audit
            drifting = pool.submit(run_drift, source, names, {}, load_settings().ansible_mitogen)
            reports, broken = run_audit(source, names)
            drift = drifting.result()
        extra = {name: drift_check(drift[name]) for name in reports}
    else:
        lab_inventory, names, extravars = _lab_targets(targets)
        reports, broken = run_audit(lab_inventory, names, extravars)
        unknown = "the variables this server was converged with are not known here: give -i INVENTORY with them"
        extra = {name: drift_check(None, unknown) for name in reports}
    reports = {name: replace(r, checks=(*r.checks, extra[name])) for name, r in reports.items()}
    if out:
        for name, report in reports.items():
            bundle.write(report, out / name, key)
    if as_json:
        payload = [report.to_dict() for report in reports.values()]
        payload += [{"server": {"name": n}, "error": h.error} for n, h in broken.items()]
        click.echo(json.dumps(payload, indent=2))
    else:
        for name, report in reports.items():
            click.echo(_summary_line(name, report))
            for check in report.checks:
                reason = f"  ({check.reason})" if check.reason else ""
                click.echo(f"  {VERDICT_MARK[check.verdict]:<4} {check.id}{reason}")
        if out:
            click.echo(f"reports in {out}" + (" (signed)" if key else ""))
    for name, host in broken.items():
        click.echo(f"norex audit: {name}: {host.error}", err=True)
    if broken or any(report.failed for report in reports.values()):
        sys.exit(1)


@audit.command(name="verify")
@click.argument("report", type=click.Path(path_type=Path))
@click.option("--key", "key_path", type=click.Path(path_type=Path), required=True, help="the signer's public key")
@click.option("--checkout", type=click.Path(path_type=Path), help="also compare the roles' files of this checkout")
@click.option("--json", "as_json", is_flag=True)
def verify(report: Path, key_path: Path, checkout: Path | None, as_json: bool) -> None:
    """Check REPORT (a folder `norex audit --out` wrote, or its statement.dsse.json): the signature, every
    file's digest, and the report against the signed Statement. Needs only the public key; works offline."""
    from norex.audit import bundle
    from norex.audit.signing import load_public_key

    if not report.exists():
        raise UsageError(f"no report at {report}")
    verified = bundle.verify(report, load_public_key(key_path), checkout)
    result = {
        "server": verified.report.server,
        "audited_at": verified.report.audited_at,
        "summary": verified.report.summary(),
        "files_verified": verified.files,
        "roles_files_verified": verified.roles,
    }
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        roles = f", {verified.roles} roles' files" if checkout else ""
        click.echo(f"verified: the signature, {verified.files} report files{roles}")
        click.echo(_summary_line(verified.report.server.get("name", ""), verified.report))
    if verified.report.failed:
        sys.exit(1)


@audit.command(name="status")
@click.option("--json", "as_json", is_flag=True, help="Print {servers: [...], needs_ops: N}.")
def status(as_json: bool) -> None:
    """The continuous audit's latest verdict of every customer server (the worker audits each ready server
    every NOREX_AUDIT_INTERVAL seconds and after every converge). Exits 1 when a server failed again after
    a re-converge: ops must look at it."""
    from datetime import UTC, datetime

    from norex.audit import continuous
    from norex.db.database import connect
    from norex.settings import load_settings
    from norex.tables import table

    db = connect(load_settings().database_url, upgrade=False)
    try:
        rows = continuous.status_rows(db)
    finally:
        db.dispose()
    needs_ops = sum(r["needs_ops"] for r in rows)
    if as_json:
        click.echo(json.dumps({"servers": rows, "needs_ops": needs_ops}, indent=2))
    elif rows:
        for row in rows:
            at = row["audited_at"]
            row["audited"] = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ") if at else None
            row["failed"] = row["failed"] or None
        click.echo(table(rows, ("customer", "server", "state", "verdict", "failed", "audited")))
    else:
        click.echo("no servers", err=True)
    if needs_ops:
        click.echo(f"norex audit: {needs_ops} server(s) failed the audit again after a re-converge", err=True)
        sys.exit(1)
