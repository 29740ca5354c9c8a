"""The continuous audit: the worker audits every ready server on a schedule (with the drift check) and after
every converge (without it), and keeps only the latest verdict per server: pass or fail, the checks that failed,
when, and how many audits in a row failed. A first failure is re-converged and audited again; a second is
reported to ops (`norex audit status` exits non-zero, and the worker writes one line naming the checks).

The verdict names checks only (norex.vpn.audit's ids), never what they read: no evidence is kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import or_, select, update

from norex.audit.runner import drift_check, run_audit, run_drift
from norex.blocklist import fleet
from norex.converge.variables import site_variables
from norex.db.database import Database
from norex.db.models import Server
from norex.devices import store as devices
from norex.errors import NorexError
from norex.provision.interface import Provisioner, ServerHandle
from norex.settings import Settings

SETTLED = "ready"
# Audits in a row that failed before ops are told: the first failure is re-converged and audited again.
REPORT_AFTER = 2
FAILED_CHARS = 512


@dataclass(frozen=True)
class Verdict:
    verdict: str  # pass | fail
    failed: tuple[str, ...]  # check ids, or why the audit could not run
    seconds: float


@dataclass(frozen=True)
class Outcome:
    customer_id: str
    verdict: str  # pass | fail | skipped (no ready server)
    failed: tuple[str, ...] = ()
    failures: int = 0  # audits in a row that failed, this one included

    @property
    def reconverge(self) -> bool:
        return self.verdict == "fail" and self.failures == 1

    @property
    def report(self) -> bool:
        """Told once; `norex audit status` keeps saying it until an audit passes."""
        return self.verdict == "fail" and self.failures == REPORT_AFTER


def audit_handle(server: ServerHandle, settings: Settings, peers, *, drift: bool) -> Verdict:
    """Audit one server with the variables its converge uses (the peers the control plane expects, the
    control plane's networks, the agent's port); with drift, also site.yml in check mode."""
    started = time.monotonic()
    inventory = {"all": {"children": {"vpn_servers": {"hosts": {server.name: dict(server.connection)}}}}}
    extravars = site_variables(server, settings, peers)
    try:
        reports, broken = run_audit(inventory, [server.name], extravars)
        if server.name in broken:
            return Verdict("fail", (f"audit did not run: {broken[server.name].error}",), time.monotonic() - started)
        checks = list(reports[server.name].checks)
        if drift:
            found = run_drift(inventory, [server.name], extravars, mitogen=settings.ansible_mitogen)
            checks.append(drift_check(found[server.name]))
    except NorexError as exc:
        return Verdict("fail", (f"audit did not run: {str(exc).splitlines()[0]}",), time.monotonic() - started)
    failed = tuple(c.id for c in checks if c.verdict == "fail")
    return Verdict("fail" if failed else "pass", failed, time.monotonic() - started)


def record(db: Database, customer_id: str, verdict: Verdict, now: int | None = None) -> Outcome:
    """Replace the server's verdict with this one (a current value, no history)."""
    now = int(time.time()) if now is None else now
    with db.write() as session:
        row = session.get(Server, customer_id, with_for_update=True)
        if row is None:
            return Outcome(customer_id, "skipped")
        row.audit_failures = 0 if verdict.verdict == "pass" else (row.audit_failures or 0) + 1
        row.audit_verdict = verdict.verdict
        row.audit_failed = ", ".join(verdict.failed)[:FAILED_CHARS] or None
        row.audit_at = now
        return Outcome(customer_id, verdict.verdict, verdict.failed, row.audit_failures)


def audit_customer(
    db: Database, settings: Settings, provisioner: Provisioner, customer_id: str, *, drift: bool
) -> Outcome:
    """Audit the customer's server if it is ready, and record the verdict. Call with the customer's lock held."""
    with db.read() as session:
        row = session.get(Server, customer_id)
        state = row.state if row is not None else None
    server = provisioner.find(customer_id) if state == SETTLED else None
    if server is None:
        return Outcome(customer_id, "skipped")
    fleet.ensure(settings, provisioner.blocklist_mirror)
    verdict = audit_handle(server, settings, devices.peers(db, customer_id), drift=drift)
    return record(db, customer_id, verdict)


def claim_due(db: Database, interval: int, now: int | None = None) -> list[str]:
    """Ready servers whose latest audit is older than interval (those waiting for ops too: a repair shows up
    by itself); their audit time is set to now as they are handed out, so the next sweep does not queue them
    again while they wait or run."""
    if interval <= 0:
        return []
    now = int(time.time()) if now is None else now
    # Before its first audit, a server counts from its latest converge, which queued an audit of its own.
    due = (Server.state == SETTLED) & or_(
        Server.audit_at <= now - interval, Server.audit_at.is_(None) & (Server.updated_at <= now - interval)
    )
    with db.write() as session:
        ids = list(session.scalars(select(Server.customer_id).where(due).order_by(Server.customer_id)))
        if ids:
            session.execute(update(Server).where(Server.customer_id.in_(ids)).values(audit_at=now))
    return ids


def status_rows(db: Database) -> list[dict]:
    """The latest verdict of every server (no personal data: the customer's opaque id and the server's name)."""
    with db.read() as session:
        rows = session.scalars(select(Server).order_by(Server.customer_id)).all()
        return [
            {
                "customer": r.customer_id,
                "server": r.name,
                "state": r.state,
                "verdict": r.audit_verdict or "none yet",
                "failed": r.audit_failed or "",
                "audited_at": r.audit_at,
                "failures_in_a_row": r.audit_failures or 0,
                "needs_ops": (r.audit_failures or 0) >= REPORT_AFTER,
            }
            for r in rows
        ]
