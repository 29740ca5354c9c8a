"""Run the project's playbooks through ansible-runner: site.yml against one customer's server (run_site),
and any playbook over a set of hosts (run_playbook: `norex audit` runs audit.yml and site.yml in check mode).

ansible-runner's private data folder (inventory, extra vars) and its artifacts (job events hold host
facts and task results) live in a temporary folder that is deleted when the run ends, whatever the
outcome; no stdout file is written. Nothing of the run is logged here: the caller gets the counts,
the duration and the server's public key (a public value), never the events.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from norex.errors import MissingPrerequisite, NorexError
from norex.project import SITE_PLAYBOOK, project_dir
from norex.provision.interface import ServerHandle


class ConvergeFailed(NorexError):
    """site.yml failed on the server (the message says where, never what the task printed)."""


# The events that end a task on a host, whose `duration` is that task's time there.
TASK_DONE = frozenset({"runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"})


@dataclass(frozen=True)
class TaskTime:
    role: str  # "" for a play's own tasks
    task: str  # the task's name as written in the role (never its arguments or results)
    seconds: float


@dataclass(frozen=True)
class Converged:
    public_key: str
    seconds: float
    changed: int
    ok: int
    # Where the time went: per task, summed over its loop items, slowest first (kept in memory only).
    timings: tuple[TaskTime, ...] = ()
    # Tasks skipped by their conditions (each still costs the controller a step).
    skipped: int = 0
    # What the roles' norex.vpn.files steps manage: path, state, mode, owner, content digest (no content).
    managed: tuple[dict[str, Any], ...] = ()
    # SHA-256 of the server agent's certificate (norex.vpn.agent reports it), for the control plane to pin.
    agent_pin: str | None = None

    def per_role(self) -> dict[str, float]:
        roles: dict[str, float] = {}
        for t in self.timings:
            roles[t.role] = roles.get(t.role, 0.0) + t.seconds
        return dict(sorted(roles.items(), key=lambda item: -item[1]))


def strategy_environment(mitogen: bool) -> dict[str, str]:
    """What makes Ansible use Mitogen's linear strategy (empty: Ansible's own)."""
    if not mitogen:
        return {}
    try:
        import ansible_mitogen
    except ImportError:
        raise MissingPrerequisite(
            "NOREX_ANSIBLE_MITOGEN is on but Mitogen is not installed: pip install 'norex[fast]'"
        ) from None
    plugins = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
    return {"ANSIBLE_STRATEGY_PLUGINS": str(plugins), "ANSIBLE_STRATEGY": "mitogen_linear"}


def run_playbook(
    playbook: str,
    inventory: dict[str, Any] | str,
    limit: list[str],
    extravars: dict[str, Any],
    on_event: Callable[[dict[str, Any]], object],
    *,
    mitogen: bool = False,
    check: bool = False,
    tags: str | None = None,
) -> tuple[str, int]:
    """One ansible-runner run of a playbook of the project over the hosts in limit; (status, rc).

    Every event goes to on_event and none is written to disk; the private folder is removed at once.
    inventory is a dict, or the path of an inventory file (an auditor's own); tags limits the run to those tags
    (the lab's prepared image is built with the package and no_logs steps only).
    """
    import ansible_runner

    project = project_dir()

    def handler(event: dict[str, Any]) -> bool:
        on_event(event)
        return False  # ansible-runner then writes no job event file for it

    bin_dir = Path(sys.executable).parent
    private = tempfile.mkdtemp(prefix="norex-run-")
    try:
        os.chmod(private, 0o700)
        result = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(project),
            playbook=playbook,
            inventory=str(Path(inventory).resolve()) if isinstance(inventory, str) else inventory,
            extravars=extravars,
            limit=",".join(limit),
            cmdline=" ".join([*(["--check"] if check else []), *([f"--tags={tags}"] if tags else [])]) or None,
            forks=max(5, min(len(limit), 50)),
            envvars={
                "ANSIBLE_CONFIG": str(project / "ansible.cfg"),
                "ANSIBLE_COLLECTIONS_PATH": str(project / "collections"),
                "ANSIBLE_NOCOLOR": "1",
                "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
                **strategy_environment(mitogen),
            },
            quiet=True,
            suppress_output_file=True,
            event_handler=handler,
            settings={"suppress_ansible_output": True},
        )
        return result.status, result.rc
    finally:
        shutil.rmtree(private, ignore_errors=True)


def run_site(server: ServerHandle, extravars: dict[str, Any], *, mitogen: bool = False) -> Converged:
    """Run site.yml against one server with these variables; return its public key and the run's counts."""
    inventory = {"all": {"children": {"vpn_servers": {"hosts": {server.name: dict(server.connection)}}}}}
    stats: dict[str, Any] = {}
    durations: dict[tuple[str, str], float] = {}
    managed: list[dict[str, Any]] = []

    def keep_stats(event: dict[str, Any]) -> None:
        # The final stats, and each task's name, role and duration; the rest of every event (facts, task
        # arguments and results) is dropped unread.
        data = event.get("event_data") or {}
        if event.get("event") == "playbook_on_stats":
            stats.update(data)
        elif event.get("event") in TASK_DONE and isinstance(data.get("duration"), int | float):
            key = (str(data.get("role") or ""), str(data.get("task") or ""))
            durations[key] = durations.get(key, 0.0) + float(data["duration"])
            if data.get("task_action") == "norex.vpn.files":
                managed.extend((data.get("res") or {}).get("expected") or [])

    started = time.monotonic()
    status, rc = run_playbook(SITE_PLAYBOOK, inventory, [server.name], extravars, keep_stats, mitogen=mitogen)
    seconds = time.monotonic() - started
    if status != "successful" or rc != 0:
        failed = sorted((stats.get("failures") or {}) | (stats.get("dark") or {}))
        where = "unreachable or failed" if failed else status
        raise ConvergeFailed(f"site.yml did not converge server {server.name} ({where}, exit {rc})")
    keys = (stats.get("artifact_data") or {}).get("wireguard_public_keys") or {}
    public_key = keys.get(server.name, "")
    if not public_key:
        raise ConvergeFailed(f"site.yml ran on {server.name} but reported no WireGuard public key")
    pins = (stats.get("artifact_data") or {}).get("agent_fingerprints") or {}
    return Converged(
        public_key=public_key,
        agent_pin=pins.get(server.name) or None,
        seconds=seconds,
        changed=sum((stats.get("changed") or {}).values()),
        ok=sum((stats.get("ok") or {}).values()),
        skipped=sum((stats.get("skipped") or {}).values()),
        timings=tuple(
            TaskTime(role, task, secs) for (role, task), secs in sorted(durations.items(), key=lambda i: -i[1])
        ),
        managed=tuple(managed),
    )
