"""The hcloud backend at its boundary with the Automation API.

The Pulumi CLI cannot run here, so FakeCli stands in for it and only for it: the real LocalWorkspace and
Stack of pulumi.automation drive it, the real error classification turns its stderr into exceptions, and
its `up` runs the real program (pulumi/) under Pulumi's mocks, with the CrossGuard pack, on the config the
backend wrote into Pulumi.<stack>.yaml. What only the real CLI and Hetzner show is in README.md.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult
from pulumi.automation.errors import create_command_error
from semver import VersionInfo

from norex.converge.variables import site_variables
from norex.db import Database
from norex.db.models import Customer, Server
from norex.errors import MissingPrerequisite, NorexError, UsageError
from norex.net import wait_for_ssh
from norex.provision import get_provisioner
from norex.provision.hcloud import (
    CLI_MISSING,
    HcloudProvisioner,
    PulumiFailed,
    RetryLater,
    StackLocked,
    stack_config,
)
from norex.settings import Settings, load_settings
from tests.unit.http_support import serving_default_lists

REPO = Path(__file__).resolve().parents[2]
PULUMI = REPO / "pulumi"
sys.path[:0] = [str(PULUMI), str(PULUMI / "policy")]
testing = importlib.import_module("norex_pulumi.testing")
program = importlib.import_module("norex_pulumi.program")
policies = importlib.import_module("norex_policies")

SERVER = "hcloud:index/server:Server"
CID = "c-3f9a1c7e00112233"
OTHER = "c-0a0b0c0d0e0f1011"
OWNER = "cp-0123456789abcdef"
TOKEN = "hcloud-token-" + "x" * 51
PASSPHRASE = "correct horse battery staple"
# What the control plane knows about a customer and must never hand to Pulumi or Hetzner.
EMAIL, STRIPE_CUSTOMER, STRIPE_SUBSCRIPTION = "alice.customer@example.com", "cus_Q9x8ABCdef1234", "sub_1PqRsTuVwX"


# -- the stand-in for the Pulumi CLI ---------------------------------------------------------------------


class FakeStack:
    def __init__(self, salt: str) -> None:
        self.salt = salt
        self.resources: list[dict[str, Any]] = []
        self.outputs: dict[str, Any] = {}
        self.locks: list[str] = []
        self.server_id: str | None = None
        self.deleted_by_hand = False
        self.updates = 0


def lock_text(name: str, host: str, pid: int, at: datetime) -> str:
    """Pulumi's DIY backend, word for word (pkg/backend/diy/lock.go)."""
    return (
        "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or "
        "delete the lock file with `pulumi cancel`.\n"
        f"  file:///srv/state/.pulumi/locks/organization/norex-customer-server/{name}/1f2e.json: "
        f"created by ops@{host} (pid {pid}) at {at.isoformat(timespec='seconds')}"
    )


class FakeCli:
    """What auto.PulumiCommand is to LocalWorkspace: `run(args, cwd, env)`; a DIY backend held in memory."""

    command = "pulumi"
    version = VersionInfo.parse("3.200.0")

    def __init__(self) -> None:
        self.stacks: dict[str, FakeStack] = {}
        self.calls: list[tuple[list[str], str, dict[str, str]]] = []
        self.failures: dict[str, list[tuple[str, str]]] = {}
        self.registrations: list[Any] = []
        self.next_server = 5000

    def fail_next(self, command: str, stderr: str, stdout: str = "") -> None:
        self.failures.setdefault(command, []).append((stdout, stderr))

    def commands(self) -> list[str]:
        return [self._key(args) for args, _, _ in self.calls]

    @staticmethod
    def _key(args: list[str]) -> str:
        words = [a for a in args[:2] if not a.startswith("-")]
        return " ".join(words) if words[0] in ("stack", "config") else words[0]

    def run(self, args: list[str], cwd: str, additional_env: dict[str, str], on_output=None, on_error=None):
        args = [a for a in args if a != "--non-interactive"]
        self.calls.append((list(args), cwd, dict(additional_env)))
        key = self._key(args)
        if self.failures.get(key):
            stdout, stderr = self.failures[key].pop(0)
            raise create_command_error(CommandResult(stdout, stderr, 255))
        name = args[2] if key == "stack init" else args[args.index("--stack") + 1] if "--stack" in args else args[-1]
        handler = getattr(self, "_" + key.replace(" ", "_").replace("-", "_"))
        return CommandResult(handler(args, Path(cwd), name, additional_env) or "", "", 0)

    @staticmethod
    def _error(stderr: str, stdout: str = "") -> None:
        raise create_command_error(CommandResult(stdout, stderr, 255))

    def _stack(self, name: str) -> FakeStack:
        if name not in self.stacks:
            self._error(f"error: no stack named '{name}' found")
        return self.stacks[name]

    @staticmethod
    def _settings(cwd: Path, name: str) -> tuple[Path, dict[str, Any]]:
        path = cwd / f"Pulumi.{name}.yaml"
        return path, (yaml.safe_load(path.read_text()) if path.is_file() else None) or {}

    def _operation(self, cwd: Path, name: str, env: dict[str, str]) -> FakeStack:
        """What every update (up, refresh, destroy) needs: the environment, no lock, the stack's own salt."""
        assert env["PULUMI_BACKEND_URL"].startswith("file://")
        assert env["PULUMI_PYTHON_CMD"] == sys.executable
        assert os.environ["PULUMI_CONFIG_PASSPHRASE"] and os.environ["HCLOUD_TOKEN"]
        project = yaml.safe_load((cwd / "Pulumi.yaml").read_text())
        assert project["name"] == "norex-customer-server" and project["main"] == str(PULUMI)
        stack = self._stack(name)
        if stack.locks:
            self._error("\n".join(stack.locks))
        if self._settings(cwd, name)[1].get("encryptionsalt") != stack.salt:
            self._error("error: getting secrets manager: incorrect passphrase, please set PULUMI_CONFIG_PASSPHRASE")
        return stack

    def _stack_init(self, args, cwd, name, env) -> None:
        if name in self.stacks:
            self._error(f"error: stack '{name}' already exists")
        assert args[args.index("--secrets-provider") + 1] == "passphrase"
        path, data = self._settings(cwd, name)
        data["encryptionsalt"] = data.get("encryptionsalt") or f"v1:{secrets.token_urlsafe(8)}:v1:x"
        path.write_text(yaml.safe_dump(data))
        self.stacks[name] = FakeStack(data["encryptionsalt"])

    def _stack_select(self, args, cwd, name, env) -> None:
        self._stack(name)

    def _config_set_all(self, args, cwd, name, env) -> None:
        self._stack(name)
        path, data = self._settings(cwd, name)
        pairs = [args[i + 1] for i, a in enumerate(args) if a == "--plaintext"]
        data.setdefault("config", {}).update(dict(p.split("=", 1) for p in pairs))
        path.write_text(yaml.safe_dump(data))

    @staticmethod
    def _refresh_state(stack: FakeStack) -> None:
        if stack.deleted_by_hand:
            stack.resources = [r for r in stack.resources if r["type"] != SERVER]
            stack.server_id, stack.deleted_by_hand = None, False

    def _up(self, args, cwd, name, env) -> str:
        stack = self._operation(cwd, name, env)
        if "--refresh" in args:
            self._refresh_state(stack)
        config = self._settings(cwd, name)[1].get("config", {})
        run = testing.run_program({key.split(":", 1)[1]: value for key, value in config.items()})
        assert args[args.index("--policy-pack") + 1] == str(PULUMI / "policy")
        for registration in run.registrations:
            for policy_name, (policy, _) in policies.VALIDATIONS.items():
                found: list[str] = []
                props = SimpleNamespace(resource_type=registration.type, props=registration.inputs)
                policy(props, lambda message, urn=None, f=found: f.append(message))
                if found:
                    self._error(f"error: preview failed: mandatory policy violation {policy_name}: {found[0]}")
        self.registrations += run.registrations
        if stack.server_id is None:
            stack.server_id, self.next_server = str(self.next_server), self.next_server + 1
        stack.resources = [
            {"urn": r.urn, "type": r.type, "custom": r.custom, "inputs": r.inputs, "outputs": dict(r.inputs)}
            for r in run.registrations
        ]
        stack.outputs = {"serverId": stack.server_id, "ipv4": run.outputs["ipv4"], "ipv6": run.outputs["ipv6"]}
        stack.updates += 1
        return f"Updating ({name})\n + customer-server created ({run.outputs['ipv4']})\nResources: 3 created"

    def _refresh(self, args, cwd, name, env) -> None:
        self._refresh_state(self._operation(cwd, name, env))

    def _destroy(self, args, cwd, name, env) -> None:
        stack = self._operation(cwd, name, env)
        for resource in stack.resources:
            if resource["type"] == SERVER and resource["outputs"].get("deleteProtection"):
                self._error(
                    "error: update failed",
                    stdout="  hcloud:index/server:Server (customer-server):\n"
                    "    error: deleting server: server deletion is protected (protected)",
                )
        stack.resources, stack.outputs, stack.server_id = [], {}, None

    def _stack_output(self, args, cwd, name, env) -> str:
        return json.dumps(self._stack(name).outputs)

    def _stack_history(self, args, cwd, name, env) -> str:
        when = "2026-01-01T00:00:00.000000Z"
        entry = {"kind": "update", "startTime": when, "endTime": when, "message": "", "environment": {}}
        return json.dumps([{**entry, "config": {}, "result": "succeeded", "version": self._stack(name).updates}])

    def _stack_export(self, args, cwd, name, env) -> str:
        stack = self._stack(name)
        secrets_providers = {"type": "passphrase", "state": {"salt": stack.salt}}
        return json.dumps(
            {"version": 3, "deployment": {"secrets_providers": secrets_providers, "resources": stack.resources}}
        )

    def _stack_rm(self, args, cwd, name, env) -> None:
        if self._stack(name).resources:
            self._error(f"error: '{name}' still has resources; removal rejected")
        del self.stacks[name]

    def _cancel(self, args, cwd, name, env) -> None:
        self._stack(name).locks.clear()


# -- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("NOREX_", "PULUMI_")) or name == "HCLOUD_TOKEN":
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("HCLOUD_TOKEN", TOKEN)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASSPHRASE)
    # The default blocklist sources' homes are on the internet: here, their synthetic copies on loopback.
    with serving_default_lists() as mirror:
        monkeypatch.setenv("NOREX_BLOCKLIST_MIRROR", mirror)
        yield


def settings(**overrides: Any) -> Settings:
    base = {
        "backend": "hcloud",
        "ops_cidrs": ["203.0.113.0/24"],
        "control_plane_cidrs": ["198.51.100.7/32", "2001:db8:7::/48"],
        "hcloud_ops_ssh_key_ids": [4711, 4712],
    }
    return load_settings(**{**base, **overrides})


class Backend(SimpleNamespace):
    provisioner: HcloudProvisioner
    cli: FakeCli
    ssh: list[str]


def backend(**overrides: Any) -> Backend:
    cli, ssh = FakeCli(), []
    provisioner = HcloudProvisioner(OWNER, settings=settings(**overrides), cli=cli, ssh_ready=ssh.append)
    return Backend(provisioner=provisioner, cli=cli, ssh=ssh)


def data() -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "norex" / "pulumi"


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message and len(message) < 600, message
    return message


# -- naming ------------------------------------------------------------------------------------------------


def test_one_stack_per_customer_named_after_its_opaque_id_in_its_own_work_folder():
    b = backend()
    b.provisioner.create(CID)
    b.provisioner.create(OTHER)
    assert set(b.cli.stacks) == {CID, OTHER}
    inits = [args for args, _, _ in b.cli.calls if args[:2] == ["stack", "init"]]
    assert [args[2] for args in inits] == [CID, OTHER]
    folders = {cwd for _, cwd, _ in b.cli.calls}
    assert folders == {str(data() / "workspaces" / CID), str(data() / "workspaces" / OTHER)}
    # Each folder is a project of its own whose program is the checkout's pulumi/ folder.
    for stack in (CID, OTHER):
        project = yaml.safe_load((data() / "workspaces" / stack / "Pulumi.yaml").read_text())
        assert project == {**yaml.safe_load((PULUMI / "Pulumi.yaml").read_text()), "main": str(PULUMI)}


@pytest.mark.parametrize(
    "bad",
    [EMAIL, STRIPE_CUSTOMER, STRIPE_SUBSCRIPTION, "C-3F9A1C7E", "c-3f9a1c7e/../x", "c-123", "", "c-3f9a1c7e\n"],
)
def test_an_email_or_stripe_id_can_never_become_a_stack(bad):
    b = backend()
    for operation in (b.provisioner.create, b.provisioner.destroy, b.provisioner.find):
        with pytest.raises(UsageError) as exc:
            operation(bad)
        assert "@" not in one_line(exc)
    assert b.cli.calls == []
    assert not (data() / "workspaces").exists()


# -- the stack's config ------------------------------------------------------------------------------------


def test_every_config_key_is_set_on_the_stack_and_the_program_accepts_it():
    b = backend()
    b.provisioner.create(CID)
    config = yaml.safe_load((data() / "workspaces" / CID / f"Pulumi.{CID}.yaml").read_text())["config"]
    assert config == {
        "norex:customerId": CID,
        "norex:serverType": "cx23",
        "norex:location": "fsn1",
        "norex:image": "debian-12",
        "norex:opsCidrs": '["203.0.113.0/24"]',
        "norex:controlPlaneCidrs": '["198.51.100.7/32", "2001:db8:7::/48"]',
        "norex:opsSshKeyIds": "[4711, 4712]",
        "norex:wireguardPort": "51820",
        "norex:agentPort": "8443",
        "norex:protection": "true",
    }
    # The real program ran on exactly that config (FakeCli's `up`): the server it declared.
    server = next(r for r in b.cli.registrations if r.type == SERVER)
    assert server.inputs["serverType"] == "cx23" and server.inputs["deleteProtection"] is True
    assert server.inputs["sshKeys"] == ["4711", "4712"]


def test_overrides_from_the_settings_reach_the_stack():
    b = backend(hcloud_server_type="cpx21", hcloud_location="ash", hcloud_image="123456", hcloud_protection=False)
    b.provisioner.create(CID)
    server = next(r for r in b.cli.registrations if r.type == SERVER)
    assert (server.inputs["serverType"], server.inputs["location"], server.inputs["image"]) == (
        "cpx21",
        "ash",
        "123456",
    )
    assert server.inputs["deleteProtection"] is False


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"ops_cidrs": []}, "NOREX_OPS_CIDRS: at least one CIDR is required"),
        ({"ops_cidrs": ["0.0.0.0/0"]}, "NOREX_OPS_CIDRS[0]: 0.0.0.0/0 is too wide"),
        ({"hcloud_ops_ssh_key_ids": []}, "NOREX_HCLOUD_OPS_SSH_KEY_IDS: at least one ops SSH key id"),
        ({"hcloud_server_type": "cx22"}, "NOREX_HCLOUD_SERVER_TYPE: 'cx22' is retired by Hetzner; use 'cx23'"),
        ({"hcloud_location": "mars1"}, "NOREX_HCLOUD_LOCATION: unknown location 'mars1'"),
    ],
)
def test_bad_settings_are_refused_at_start_in_terms_of_norex_variables(overrides, variable):
    with pytest.raises(UsageError) as exc:
        backend(**overrides)
    assert variable in one_line(exc)
    assert "pulumi config set" not in str(exc.value)


def test_nothing_personal_reaches_pulumi_or_hetzner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Through the worker's own converge, for a customer whose row holds an email and Stripe ids: every
    argument, environment value and file Pulumi gets, every resource input and the state hold none of them."""
    from norex import converge
    from norex.converge import Converged
    from norex.jobs import reconcile

    db = Database(f"sqlite:///{tmp_path / 'norex.db'}")
    db.upgrade()
    now = int(time.time())
    with db.write() as session:
        session.add(
            Customer(
                id=CID,
                email=EMAIL,
                stripe_customer_id=STRIPE_CUSTOMER,
                subscription_id=STRIPE_SUBSCRIPTION,
                status="active",
                status_since=now,
                desired="present",
                created_at=now,
            )
        )
    monkeypatch.setattr(converge, "converge", lambda *a, **k: Converged("A" * 43 + "=", 1.0, 5, 20))
    b = backend()
    try:
        step = reconcile.converge_customer(db, b.provisioner.settings, b.provisioner, CID)
    finally:
        db.dispose()
    assert step.action == "created"
    seen = [json.dumps([args, {k: v for k, v in env.items()}]) for args, _, env in b.cli.calls]
    seen += [json.dumps(r.inputs) for r in b.cli.registrations]
    seen += [json.dumps(s.resources) + json.dumps(s.outputs) for s in b.cli.stacks.values()]
    seen += [p.read_text() for p in data().rglob("*") if p.is_file()]
    everything = "\n".join(seen)
    assert CID in everything
    for personal in (EMAIL, STRIPE_CUSTOMER, STRIPE_SUBSCRIPTION, "cus_", "sub_", "@example.com"):
        assert personal not in everything
    assert policies.find_personal_data(everything) == []
    assert TOKEN not in everything and PASSPHRASE not in everything  # secrets stay in the environment


# -- create, find and the server Ansible gets --------------------------------------------------------------


def test_create_builds_the_server_ansible_converges(tmp_path: Path):
    key = tmp_path / "id_ed25519"
    key.write_text("not a real key\n")
    b = backend(ssh_key_file=key)
    server = b.provisioner.create(CID)
    known_hosts = data() / "known_hosts" / f"{CID}-5000"
    assert server.customer_id == CID and server.backend == "hcloud"
    assert server.name == f"norex-{CID}"
    assert (server.ipv4, server.ipv6) == (testing.MOCK_IPV4, testing.MOCK_IPV6)
    assert server.connection == {
        "ansible_host": testing.MOCK_IPV4,
        "ansible_port": 22,
        "ansible_user": "root",
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=accept-new "
        "-o IdentitiesOnly=yes",
    }
    # SSH from where Hetzner's firewall lets it in: ops and the control plane (which converges it).
    variables = site_variables(server, b.provisioner.settings, [])
    assert variables["norex_ops_cidrs"] == ["203.0.113.0/24", "198.51.100.7/32", "2001:db8:7::/48"]
    assert variables["norex_control_plane_cidrs"] == ["198.51.100.7/32", "2001:db8:7::/48"]
    assert "resolver_root_hints" not in variables  # the real root, with the real trust anchor
    assert b.ssh == [testing.MOCK_IPV4]  # returned only once SSH answered
    # The program names the server the same way.
    config_module = importlib.import_module("norex_pulumi.config")
    raw = {"customerId": CID, "opsCidrs": ["203.0.113.0/24"], "opsSshKeyIds": [1]}
    assert server.name == config_module.parse_settings(raw).server_name


def test_up_refreshes_and_enforces_the_policy_pack_and_shows_nothing(caplog: pytest.LogCaptureFixture):
    b = backend()
    with caplog.at_level("DEBUG"):
        b.provisioner.create(CID)
    assert testing.MOCK_IPV4 not in caplog.text
    up = next(args for args, _, _ in b.cli.calls if args[0] == "up")
    assert {"--refresh", "--suppress-outputs"} <= set(up)
    assert up[up.index("--policy-pack") + 1] == str(PULUMI / "policy")


def test_find_reads_the_outputs_without_creating_anything():
    b = backend()
    assert b.provisioner.find(CID) is None
    assert "stack init" not in b.cli.commands() and b.cli.stacks == {}
    made = b.provisioner.create(CID)
    b.cli.calls.clear()
    assert b.provisioner.find(CID) == made
    assert "up" not in b.cli.commands()
    assert b.ssh == [made.ipv4]  # find does not wait for SSH


def test_a_server_deleted_by_hand_is_made_again_by_the_next_create():
    b = backend()
    first = b.provisioner.create(CID)
    b.cli.stacks[CID].deleted_by_hand = True
    second = b.provisioner.create(CID)
    assert first.connection["ansible_ssh_common_args"] != second.connection["ansible_ssh_common_args"]
    assert b.cli.stacks[CID].server_id == "5001"  # a new server, pinned in a new known_hosts file


def test_a_stack_without_outputs_is_still_found_so_it_gets_destroyed():
    b = backend()
    b.cli.fail_next("up", "error: update failed", stdout="    error: creating server: resource_unavailable")
    with pytest.raises(PulumiFailed):
        b.provisioner.create(CID)
    found = b.provisioner.find(CID)
    assert found is not None and found.ipv4 == "" and found.connection == {}
    assert b.provisioner.existing() == {CID}


def test_create_waits_for_ssh_and_says_so_in_one_line():
    cli = FakeCli()

    def never(host: str) -> None:
        raise TimeoutError("no banner")

    p = HcloudProvisioner(OWNER, settings=settings(), cli=cli, ssh_ready=never)
    with pytest.raises(NorexError) as exc:
        p.create(CID)
    assert one_line(exc) == f"the server of {CID} did not answer on SSH in time; the job is retried"


# -- settings persistence ----------------------------------------------------------------------------------


def test_the_encryption_salt_survives_a_lost_work_folder():
    b = backend()
    b.provisioner.create(CID)
    salt = b.cli.stacks[CID].salt
    durable = data() / "stacks" / OWNER / f"{CID}.yaml"
    assert yaml.safe_load(durable.read_text())["encryptionsalt"] == salt
    assert durable.stat().st_mode & 0o777 == 0o600
    shutil.rmtree(data() / "workspaces")
    b.cli.calls.clear()
    assert b.provisioner.create(CID).ipv4 == testing.MOCK_IPV4  # FakeCli refuses any other salt
    assert "stack init" not in b.cli.commands() and "stack export" not in b.cli.commands()
    assert yaml.safe_load((data() / "workspaces" / CID / f"Pulumi.{CID}.yaml").read_text())["encryptionsalt"] == salt


def test_without_any_local_copy_the_salt_comes_back_from_the_state():
    """A worker that never saw the stack (a fleet), or a new data dir: the salt is in the state too."""
    b = backend()
    b.provisioner.create(CID)
    shutil.rmtree(data() / "workspaces")
    shutil.rmtree(data() / "stacks")
    b.cli.calls.clear()
    b.provisioner.destroy(CID)  # FakeCli refuses refresh, up and destroy without the stack's own salt
    assert b.cli.commands()[:2] == ["stack select", "stack export"]
    assert CID not in b.cli.stacks


def test_the_durable_copy_wins_over_a_stale_work_folder():
    b = backend()
    b.provisioner.create(CID)
    work_settings = data() / "workspaces" / CID / f"Pulumi.{CID}.yaml"
    work_settings.write_text(yaml.safe_dump({"encryptionsalt": "v1:stale:v1:x"}))
    b.provisioner.create(CID)
    assert yaml.safe_load(work_settings.read_text())["encryptionsalt"] == b.cli.stacks[CID].salt


# -- destroy, existing -------------------------------------------------------------------------------------


def test_destroy_lifts_the_protection_then_destroys_and_removes_the_stack():
    b = backend()
    b.provisioner.create(CID)
    b.cli.calls.clear()
    b.provisioner.destroy(CID)
    assert b.cli.commands() == [
        "stack select",
        "stack export",  # a protected server in the state
        "refresh",  # still there at Hetzner?
        "stack history",
        "stack export",
        "config set-all",  # norex:protection false
        "up",
        "stack output",
        "stack output",
        "stack history",
        "destroy",
        "stack history",
        "stack rm",
    ]
    lift = next(args for args, _, _ in b.cli.calls if args[:2] == ["config", "set-all"])
    assert "norex:protection=false" in lift
    assert b.cli.stacks == {} and b.provisioner.existing() == set()
    assert not (data() / "workspaces" / CID).exists()
    assert list((data() / "known_hosts").iterdir()) == []


def test_destroy_of_a_server_deleted_by_hand_never_makes_a_new_one():
    b = backend()
    b.provisioner.create(CID)
    b.cli.stacks[CID].deleted_by_hand = True
    b.cli.calls.clear()
    b.provisioner.destroy(CID)
    assert "up" not in b.cli.commands() and b.cli.stacks == {}


def test_destroy_without_protection_and_destroy_again_are_quiet():
    b = backend(hcloud_protection=False)
    b.provisioner.create(CID)
    b.provisioner.destroy(CID)
    b.cli.calls.clear()
    b.provisioner.destroy(CID)  # nothing left: no error
    b.provisioner.destroy(OTHER)  # never existed: no error
    assert b.cli.commands() == ["stack select", "stack select"]
    assert b.provisioner.find(CID) is None


def test_existing_is_the_registry_written_before_anything_is_made_never_stack_ls():
    b = backend()
    assert b.provisioner.existing() == set()
    b.provisioner.create(CID)
    b.cli.fail_next("up", "error: update failed", stdout="    error: creating server: resource_unavailable")
    with pytest.raises(PulumiFailed):
        b.provisioner.create(OTHER)  # crashed first up: registered all the same
    assert b.provisioner.existing() == {CID, OTHER}
    assert not any(args[:2] == ["stack", "ls"] for args, _, _ in b.cli.calls)
    # Another control plane (another database) sees none of them.
    mine = HcloudProvisioner("cp-ffffffffffffffff", settings=settings(), cli=b.cli, ssh_ready=b.ssh.append)
    assert mine.existing() == set()


def test_a_stack_gone_from_the_state_is_dropped_from_the_registry():
    b = backend()
    b.provisioner.create(CID)
    b.cli.stacks.clear()  # removed by hand (`pulumi stack rm --force`)
    assert b.provisioner.find(CID) is None
    assert b.provisioner.existing() == set()


# -- errors ------------------------------------------------------------------------------------------------


def test_a_concurrent_update_is_retried_later_and_then_succeeds():
    b = backend()
    b.provisioner.create(CID)
    live = lock_text(CID, "worker-2.example.net", 4242, datetime.now(UTC) - timedelta(minutes=3))
    b.cli.stacks[CID].locks.append(live)
    with pytest.raises(RetryLater) as exc:
        b.provisioner.create(CID)
    assert one_line(exc) == f"stack {CID} is being updated by another Pulumi run; the job is retried later"
    b.cli.stacks[CID].locks.clear()  # the other run ends
    assert b.provisioner.create(CID).ipv4 == testing.MOCK_IPV4
    assert "cancel" not in b.cli.commands()


def test_pulumi_clouds_409_is_retried_later_too():
    b = backend()
    b.cli.fail_next("up", "error: [409] Conflict: Another update is currently in progress.")
    with pytest.raises(RetryLater):
        b.provisioner.create(CID)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize(
    "lock",
    [
        lambda: (socket.gethostname(), dead_pid(), datetime.now(UTC)),  # crashed here: its process is gone
        lambda: ("worker-2.example.net", 4242, datetime.now(UTC) - timedelta(hours=3)),  # older than any run
    ],
)
def test_a_stale_lock_is_reported_with_the_command_to_clear_it_and_never_cleared(lock):
    b = backend()
    b.provisioner.create(CID)
    host, pid, at = lock()
    b.cli.stacks[CID].locks.append(lock_text(CID, host, pid, at))
    for operation in (b.provisioner.create, b.provisioner.destroy):
        with pytest.raises(StackLocked) as exc:
            operation(CID)
        message = one_line(exc)
        backend_url = f"file://{data() / 'state'}"
        assert message.endswith(
            f"run `cd {PULUMI} && PULUMI_BACKEND_URL={backend_url} pulumi cancel --yes --stack {CID}`"
        )
        assert f"pid {pid} on {host}" in message and "ops@" not in message
    assert "cancel" not in b.cli.commands() and b.cli.stacks[CID].locks  # still there: ops decide
    assert b.provisioner.existing() == {CID}


def test_a_live_lock_on_this_host_is_not_stale():
    b = backend()
    b.provisioner.create(CID)
    b.cli.stacks[CID].locks.append(lock_text(CID, socket.gethostname(), os.getpid(), datetime.now(UTC)))
    with pytest.raises(RetryLater):
        b.provisioner.create(CID)


def test_other_failures_are_one_line_with_pulumis_error_and_no_address():
    b = backend()
    b.cli.fail_next(
        "up",
        "error: update failed",
        stdout="Updating (c-3f9a1c7e00112233)\n  hcloud:index/server:Server (customer-server):\n"
        "    error: creating server 203.0.113.10 / 2001:db8:1::1: \x1b[31mserver type cx23 unavailable\x1b[0m "
        "in fsn1 (resource_unavailable)\nResources: 2 unchanged",
    )
    with pytest.raises(PulumiFailed) as exc:
        b.provisioner.create(CID)
    assert one_line(exc) == (
        f"pulumi up failed for stack {CID}: error: creating server <address> / <address>: "
        "server type cx23 unavailable in fsn1 (resource_unavailable)"
    )
    assert exc.value.__suppress_context__


def test_a_wrong_passphrase_and_a_refused_token_are_missing_prerequisites():
    b = backend()
    b.cli.fail_next("up", "error: getting secrets manager: incorrect passphrase, please set PULUMI_CONFIG_PASSPHRASE")
    with pytest.raises(MissingPrerequisite) as exc:
        b.provisioner.create(CID)
    assert one_line(exc) == f"PULUMI_CONFIG_PASSPHRASE is missing or is not the passphrase of stack {CID}"
    b.cli.fail_next("up", "error: update failed", stdout="error: unable to authenticate your request (unauthorized)")
    with pytest.raises(MissingPrerequisite) as exc:
        b.provisioner.create(CID)
    assert TOKEN not in one_line(exc)


@pytest.mark.parametrize("variable", ["HCLOUD_TOKEN", "PULUMI_CONFIG_PASSPHRASE"])
def test_a_missing_token_or_passphrase_stops_the_backend_at_start(monkeypatch: pytest.MonkeyPatch, variable):
    monkeypatch.delenv(variable)
    with pytest.raises(MissingPrerequisite) as exc:
        backend()
    assert one_line(exc).startswith(f"the hcloud backend cannot run: {variable} is not set")


def test_the_passphrase_may_come_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", str(tmp_path / "passphrase"))
    assert backend().provisioner.existing() == set()


def without_pulumi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No `pulumi` on PATH nor in ~/.pulumi/bin, whatever this machine has: PATH is an empty folder."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert shutil.which("pulumi") is None


def test_the_real_sdk_without_the_cli_gives_our_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    without_pulumi(monkeypatch, tmp_path)
    # What the SDK itself raises when the CLI is missing: a bare FileNotFoundError from `pulumi version`.
    with pytest.raises(FileNotFoundError):
        auto.LocalWorkspace(work_dir=str(tmp_path))
    with pytest.raises(MissingPrerequisite) as exc:
        HcloudProvisioner(OWNER, settings=settings())
    assert one_line(exc) == CLI_MISSING
    assert exc.value.exit_code == 5
    monkeypatch.setenv("NOREX_BACKEND", "hcloud")
    monkeypatch.setenv("NOREX_OPS_CIDRS", "203.0.113.0/24, 2001:db8::/48")
    monkeypatch.setenv("NOREX_HCLOUD_OPS_SSH_KEY_IDS", "4711")
    with pytest.raises(MissingPrerequisite) as exc:
        get_provisioner("hcloud", OWNER)  # what the worker calls, with the settings from the environment
    assert one_line(exc) == CLI_MISSING


def fake_pulumi(tmp_path: Path, version: str) -> None:
    script = tmp_path / "bin" / "pulumi"
    script.write_text(f"#!/bin/sh\necho {version}\n")
    script.chmod(0o755)


def test_an_old_cli_is_refused_and_a_current_one_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    without_pulumi(monkeypatch, tmp_path)
    fake_pulumi(tmp_path, "v3.50.0")
    with pytest.raises(MissingPrerequisite) as exc:
        HcloudProvisioner(OWNER, settings=settings())
    assert one_line(exc).startswith("the Pulumi CLI cannot be used: Minimum version requirement failed")
    fake_pulumi(tmp_path, "v3.210.0")
    provisioner = HcloudProvisioner(OWNER, settings=settings())
    assert isinstance(provisioner.cli, auto.PulumiCommand) and str(provisioner.cli.version) == "3.210.0"


def test_the_cli_vanishing_later_is_a_missing_prerequisite_too():
    b = backend()

    def gone(*args: Any, **kwargs: Any) -> None:
        raise FileNotFoundError(2, "No such file or directory", "pulumi")

    b.cli.run = gone
    with pytest.raises(MissingPrerequisite) as exc:
        b.provisioner.create(CID)
    assert one_line(exc) == CLI_MISSING


# -- retry: the worker's own loop --------------------------------------------------------------------------


def worker_with_one_customer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Database, Backend, list]:
    """The worker's own task on this backend, for one paying customer; site.yml replaced by a result, the
    queue's schedule recorded (returned) instead of run."""
    from norex import converge
    from norex.converge import Converged
    from norex.jobs import tasks

    db = Database(f"sqlite:///{tmp_path / 'norex.db'}")
    db.upgrade()
    now = int(time.time())
    with db.write() as session:
        session.add(Customer(id=CID, stripe_customer_id="cus_x", status="active", desired="present", created_at=now))
    b = backend()
    monkeypatch.setattr(tasks, "runtime", lambda: tasks.Runtime(b.provisioner.settings, db, b.provisioner))
    monkeypatch.setattr(tasks, "customer_lock", lambda customer_id: contextlib.nullcontext())
    monkeypatch.setattr(converge, "converge", lambda *a, **k: Converged("A" * 43 + "=", 1.0, 5, 20))
    scheduled: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.converge, "schedule", lambda **kw: scheduled.append(kw))
    return db, b, scheduled


def test_the_worker_retries_a_concurrent_update_with_backoff(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from norex.jobs import tasks

    db, b, scheduled = worker_with_one_customer(monkeypatch, tmp_path)
    b.cli.fail_next("up", lock_text(CID, "worker-2.example.net", 4242, datetime.now(UTC)))
    try:
        with pytest.raises(RetryLater):
            tasks.converge.call_local(CID)
        assert scheduled == [{"args": (CID, 1, False), "delay": tasks.backoff(0)}]
        assert tasks.converge.call_local(CID, 1) == "created"  # the retry, once the other run is done
        with db.read() as session:
            assert session.get(Server, CID).state == "ready"
    finally:
        db.dispose()
    assert len(scheduled) == 1


def test_a_stale_lock_fails_the_job_at_once_and_waits_for_ops(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
):
    """A permanent error (here a lock left by a dead run) is not retried six times: the job fails at once,
    ops read why in `norex customers list`, the sweep leaves it alone, and --retry-failed queues it again."""
    from norex.billing.cli import customer_rows
    from norex.jobs import reconcile, tasks

    db, b, scheduled = worker_with_one_customer(monkeypatch, tmp_path)
    queued: list[tuple] = []
    b.cli.fail_next("up", lock_text(CID, socket.gethostname(), dead_pid(), datetime.now(UTC)))
    try:
        assert tasks.converge.call_local(CID) == "failed"
        assert scheduled == []  # not retried
        [row] = customer_rows(db)
        assert row["server_state"] == "failed" and "pulumi cancel --yes --stack " + CID in row["error"]
        assert f"norex: worker: {CID}: failed, not retried: stack {CID} is locked" in capsys.readouterr().err
        result = reconcile.sweep(db, b.provisioner.settings, b.provisioner)
        assert (result.drifted, result.failed) == ([], [CID])
        task = tasks.converge
        monkeypatch.setattr(tasks, "converge", lambda *args, **kw: queued.append((args, kw)))
        tasks.run_sweep()
        assert queued == []
        tasks.run_sweep(retry_failed=True)
        assert queued == [((CID,), {"force": True})]
        # Once ops cleared the lock, the retry works and the error is gone.
        assert task.call_local(CID, 0, True) == "created"
        [row] = customer_rows(db)
        assert (row["server_state"], row["error"]) == ("ready", None)
    finally:
        db.dispose()


# -- waiting for SSH ---------------------------------------------------------------------------------------


def test_wait_for_ssh_returns_on_the_banner_and_times_out_without_one():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n")

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        wait_for_ssh("127.0.0.1", port, timeout=5, interval=0.05)
        thread.join(5)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        wait_for_ssh("127.0.0.1", port, timeout=0.3, interval=0.05)  # closed now: refused
    assert time.monotonic() - started < 2


def test_wait_for_ssh_is_not_fooled_by_a_port_that_accepts_but_is_not_sshd():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(TimeoutError):
            wait_for_ssh("127.0.0.1", port, timeout=0.5, interval=0.05)


def test_stack_config_is_pure_settings_to_strings():
    assert stack_config(settings(), CID, protection=False)["norex:protection"] == "false"
