"""Run playbooks/audit.yml over servers and collect each one's checks, in memory (no ansible-runner artifacts).

Targets come from an Ansible inventory (an auditor's, with SSH access only: no control plane, no database)
or from the lab. The audit itself runs on the server (norex.vpn.audit) and changes nothing there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from norex.audit.evidence import Check, Report, collection_identity, now_utc
from norex.converge.runner import run_playbook
from norex.errors import NorexError
from norex.project import SITE_PLAYBOOK, project_dir

AUDIT_PLAYBOOK = "playbooks/audit.yml"
HOST_DONE = ("runner_on_ok", "runner_on_failed")


class AuditFailed(NorexError):
    """The audit could not run on a server (unreachable, or the playbook broke): no verdict for it."""

    exit_code = 1


@dataclass
class HostAudit:
    name: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    identity: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    def report(self, collection: dict[str, str], audited_at: str) -> Report:
        keys = self.identity.get("host_keys_sha256") or {}
        host_key = keys.get("ssh-ed25519") or next(iter(sorted(keys.values())), "")
        return Report(
            server={
                "name": self.name,
                "machine_id": str(self.identity.get("machine_id", "")),
                "host_key_sha256": host_key,
            },
            checks=tuple(Check(**c) for c in self.checks),
            collection=collection,
            audited_at=audited_at,
        )


@dataclass
class Drift:
    changed: list[str] = field(default_factory=list)  # the tasks site.yml would change
    error: str = ""


def run_drift(inventory: dict[str, Any] | str, limit: list[str], extravars: dict[str, Any], mitogen: bool = False):
    """site.yml in check mode (no --diff) over the hosts: per host, the tasks that would change."""
    found = {name: Drift() for name in limit}

    def keep(event: dict[str, Any]) -> None:
        data = event.get("event_data") or {}
        host = str(data.get("host") or "")
        if host in found and event.get("event") == "runner_on_ok" and (data.get("res") or {}).get("changed"):
            found[host].changed.append(str(data.get("task") or ""))
        elif (
            host in found
            and event.get("event") in ("runner_on_failed", "runner_on_unreachable")
            and not data.get("ignore_errors")
        ):
            found[host].error = "site.yml in check mode failed on it"

    run_playbook(SITE_PLAYBOOK, inventory, limit, extravars, keep, mitogen=mitogen, check=True)
    return found


def drift_check(drift: Drift | None, not_applicable: str = "") -> Check:
    """The drift check, made on the controller: site.yml in check mode reports no change."""
    from norex.collection import audit_claims

    claim = audit_claims.CLAIMS[audit_claims.CHECK_CLAIMS["drift.site_yml"]]
    command = "ansible-playbook playbooks/site.yml --check (no --diff)"
    looked_at = "the whole server against what playbooks/site.yml would make it"
    if drift is None:
        return Check("drift.site_yml", claim, looked_at, command, "", "not applicable", not_applicable)
    if drift.error:
        return Check("drift.site_yml", claim, looked_at, command, drift.error, "fail", drift.error)
    evidence = f"tasks that would change: {len(drift.changed)}" + "".join(f"\n- {t}" for t in drift.changed[:20])
    if drift.changed:
        return Check("drift.site_yml", claim, looked_at, command, evidence, "fail", "the server has drifted")
    return Check("drift.site_yml", claim, looked_at, command, evidence, "pass")


def run_audit(inventory: dict[str, Any] | str, limit: list[str], extravars: dict[str, Any] | None = None):
    """audit.yml over the hosts in limit; (reports by host name, HostAudit by host name for the ones that broke)."""
    found: dict[str, HostAudit] = {name: HostAudit(name) for name in limit}

    def keep(event: dict[str, Any]) -> None:
        data = event.get("event_data") or {}
        host = str(data.get("host") or "")
        if host not in found:
            return
        kind = event.get("event")
        result = data.get("res") or {}
        if kind in HOST_DONE and data.get("task_action") == "norex.vpn.audit":
            if kind == "runner_on_ok":
                found[host].checks = list(result.get("checks") or [])
                found[host].identity = dict(result.get("identity") or {})
            else:
                found[host].error = "the audit module failed on the server"
        elif kind == "runner_on_unreachable":
            found[host].error = "unreachable over SSH"

    audited_at = now_utc()
    run_playbook(AUDIT_PLAYBOOK, inventory, limit, extravars or {}, keep)
    collection = collection_identity(project_dir())
    reports = {}
    for name, host in found.items():
        if not host.error and not host.checks:
            host.error = "the audit did not run on it (not in the inventory's vpn_servers?)"
        if not host.error:
            reports[name] = host.report(collection, audited_at)
    broken = {name: host for name, host in found.items() if host.error}
    return reports, broken
