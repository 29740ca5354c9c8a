"""The hcloud backend: one Pulumi stack per customer, running the program in pulumi/ on Hetzner Cloud.

The program is a *local* program of the Automation API: the CLI runs pulumi/__main__.py with this
venv's Python (PULUMI_PYTHON_CMD). What lives where on a worker (defaults under the data dir):

  pulumi/state/                            the Pulumi state (NOREX_PULUMI_BACKEND_URL; s3://... for a fleet)
  pulumi/workspaces/<stack>/               disposable work folder, one per stack (NOREX_PULUMI_WORK_DIR):
                                           Pulumi.yaml (main: the pulumi/ folder) and Pulumi.<stack>.yaml
  pulumi/stacks/<owner>/<stack>.yaml       durable copy of Pulumi.<stack>.yaml (config and `encryptionsalt`);
                                           one file per stack this control plane made: existing() lists them
  pulumi/known_hosts/<stack>-<serverId>    the server's SSH host key, pinned at first contact

One work folder per stack because Pulumi keeps one workspace file per project folder (in PULUMI_HOME):
create/select of two stacks in one folder at once corrupts it. A lost work folder is made again, its
settings file restored from the durable copy before `stack select`, so a stack never gets a new salt.
The stack is named after the opaque customer id and nothing else reaches Pulumi: no email, no Stripe id.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto
from pulumi.automation import errors as auto_errors

from norex.errors import MissingPrerequisite, NorexError
from norex.net import wait_for_ssh
from norex.provision.hcloud.errors import LOCK_LINE, PulumiFailed, RetryLater, StackLocked, lock_is_stale, summary
from norex.provision.hcloud.files import stack_salt, write_private
from norex.provision.hcloud.program import (
    PROBE_CUSTOMER_ID,
    program_dir,
    server_settings,
    stack_config,
    stack_name_for,
)
from norex.provision.hcloud.pulumi_cli import CLI_MISSING, environment_problems, pulumi_command
from norex.provision.interface import CUSTOMER_ID_RE, ServerHandle
from norex.redact import without_credentials
from norex.settings import Settings, data_dir, load_settings

SERVER_TYPE = "hcloud:index/server:Server"
SSH_PORT = 22
SSH_TIMEOUT_SECONDS = 300.0


class HcloudProvisioner:
    """Customers' servers on Hetzner Cloud, one Pulumi stack each, for one control plane (owner)."""

    name = "hcloud"

    def __init__(
        self,
        owner: str,
        *,
        settings: Settings | None = None,
        cli: Any | None = None,
        ssh_ready: Callable[[str], None] | None = None,
        home: Path | None = None,
    ) -> None:
        """Check everything once, at worker start: settings, the program, the environment, the CLI.

        cli (an auto.PulumiCommand) and ssh_ready are the seams the unit tests replace.
        """
        self.owner = owner
        self.settings = settings or load_settings()
        self.program = program_dir()
        self.valid = server_settings(self.settings, PROBE_CUSTOMER_ID)
        problems = environment_problems()
        if self.settings.ssh_key_file is not None and not self.settings.ssh_key_file.is_file():
            problems.append(f"NOREX_SSH_KEY_FILE: no file at {self.settings.ssh_key_file}")
        if problems:
            raise MissingPrerequisite("the hcloud backend cannot run: " + "; ".join(problems))
        self.cli = cli if cli is not None else pulumi_command()
        self._ssh_ready = ssh_ready or (lambda host: wait_for_ssh(host, SSH_PORT, SSH_TIMEOUT_SECONDS))
        home = home or data_dir() / "pulumi"
        self.work_dir = self.settings.pulumi_work_dir
        self.stacks_dir = home / "stacks" / owner
        self.known_hosts_dir = home / "known_hosts"
        project = yaml.safe_load((self.program / "Pulumi.yaml").read_text())
        self.project = auto.ProjectSettings.from_dict(project)
        # Absolute: the program stays in the checkout, each stack's folder only points at it.
        self.project.main = str(self.program)
        backend = self.settings.pulumi_backend_url
        if backend.startswith("file://"):
            state = Path(backend.removeprefix("file://")).expanduser()
            state.mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- the Provisioner interface --------------------------------------------------------------------------

    def blocklist_mirror(self) -> str | None:
        """The servers are on the internet: the default blocklist sources come from their homes."""
        return None

    def create(self, customer_id: str) -> ServerHandle:
        stack_name_for(customer_id)
        config = stack_config(self.settings, customer_id)
        stack = self._open(customer_id, create=True)
        assert stack is not None
        with self._pulumi("up", customer_id):
            stack.set_all_config({key: auto.ConfigValue(value) for key, value in config.items()})
            self._persist(customer_id)
            # refresh: a server deleted behind Pulumi's back is made again instead of being waited for.
            result = self._up(stack, refresh=True)
        server = self._server(customer_id, result.outputs)
        if not server.ipv4:
            raise PulumiFailed(f"pulumi up for stack {customer_id} reported no IPv4 address")
        try:
            self._ssh_ready(server.ipv4)
        except TimeoutError:
            raise NorexError(f"the server of {customer_id} did not answer on SSH in time; the job is retried") from None
        return server

    def destroy(self, customer_id: str) -> None:
        stack_name_for(customer_id)
        stack = self._open(customer_id, create=False)
        if stack is not None:
            with self._pulumi("destroy", customer_id):
                if self._protected(stack):
                    # Hetzner refuses to delete a protected server: lift the protection first, but only on a
                    # server that still exists (an `up` would make one that was deleted by hand).
                    stack.refresh(on_output=None, on_error=None, color="never")
                    if self._protected(stack):
                        config = stack_config(self.settings, customer_id, protection=False)
                        stack.set_all_config({key: auto.ConfigValue(value) for key, value in config.items()})
                        self._persist(customer_id)
                        self._up(stack, refresh=False)
                stack.destroy(on_output=None, on_error=None, color="never")
                stack.workspace.remove_stack(customer_id)
        self._forget(customer_id)

    def find(self, customer_id: str) -> ServerHandle | None:
        """The stack's server; a stack without outputs yet (a crashed first `up`) is a server too, so that
        it is destroyed when nobody wants it."""
        stack_name_for(customer_id)
        stack = self._open(customer_id, create=False)
        if stack is None:
            self._forget(customer_id)
            return None
        with self._pulumi("stack output", customer_id):
            outputs = stack.outputs()
        return self._server(customer_id, outputs)

    def existing(self) -> set[str]:
        """The stacks this control plane made and has not removed: its registry, never `pulumi stack ls`."""
        if not self.stacks_dir.is_dir():
            return set()
        return {p.stem for p in self.stacks_dir.glob("*.yaml") if CUSTOMER_ID_RE.fullmatch(p.stem)}

    # -- stacks and their settings --------------------------------------------------------------------------

    def _durable(self, stack_name: str) -> Path:
        return self.stacks_dir / f"{stack_name}.yaml"

    def _settings_file(self, stack_name: str) -> Path:
        return self.work_dir / stack_name / f"Pulumi.{stack_name}.yaml"

    def _env(self) -> dict[str, str]:
        """Added to the worker's environment (which holds HCLOUD_TOKEN and the passphrase) for each command."""
        return {
            "PULUMI_BACKEND_URL": self.settings.pulumi_backend_url,
            "PULUMI_PYTHON_CMD": sys.executable,  # the program runs with this venv (pulumi, pulumi_hcloud)
            "PULUMI_SKIP_UPDATE_CHECK": "true",
        }

    def _open(self, stack_name: str, *, create: bool) -> auto.Stack | None:
        """Select the customer's stack in its own work folder (or create it); None when it does not exist."""
        work = self.work_dir / stack_name
        work.mkdir(parents=True, exist_ok=True, mode=0o700)
        durable = self._durable(stack_name)
        if durable.is_file():
            # The durable copy wins: it holds the salt the stack's secrets are encrypted with.
            write_private(self._settings_file(stack_name), durable.read_bytes())
        with self._pulumi("stack select", stack_name):
            workspace = auto.LocalWorkspace(
                work_dir=str(work),
                project_settings=self.project,
                env_vars=self._env(),
                secrets_provider="passphrase",
                pulumi_command=self.cli,
            )
            try:
                stack = auto.Stack.select(stack_name, workspace)
            except auto_errors.StackNotFoundError:
                if not create:
                    return None
                try:
                    # Registered (durable copy) right after `stack init`, before anything is made: a crash
                    # from here on leaves a stack that existing() reports and the sweep cleans up.
                    stack = auto.Stack.create(stack_name, workspace)
                except auto_errors.StackAlreadyExistsError:
                    stack = auto.Stack.select(stack_name, workspace)
            if not stack_salt(workspace, stack_name):
                self._recover_salt(stack)
        self._persist(stack_name)
        return stack

    def _recover_salt(self, stack: auto.Stack) -> None:
        """No copy of the settings anywhere here (another worker made the stack, or the data dir is new):
        take the salt from the stack's state, where Pulumi keeps it too."""
        deployment = stack.export_stack().deployment or {}
        salt = ((deployment.get("secrets_providers") or {}).get("state") or {}).get("salt")
        if salt:
            workspace = stack.workspace
            try:
                current = workspace.stack_settings(stack.name)
            except FileNotFoundError:
                current = auto.StackSettings()
            current.encryption_salt = salt
            workspace.save_stack_settings(stack.name, current)

    def _persist(self, stack_name: str) -> None:
        source = self._settings_file(stack_name)
        if source.is_file():
            write_private(self._durable(stack_name), source.read_bytes())

    def _forget(self, stack_name: str) -> None:
        """Everything this worker kept about a stack that no longer exists."""
        self._durable(stack_name).unlink(missing_ok=True)
        shutil.rmtree(self.work_dir / stack_name, ignore_errors=True)
        if self.known_hosts_dir.is_dir():
            for pinned in self.known_hosts_dir.glob(f"{stack_name}-*"):
                pinned.unlink(missing_ok=True)

    def _up(self, stack: auto.Stack, *, refresh: bool) -> auto.UpResult:
        """`pulumi up` with the program's CrossGuard pack (mandatory policies: no backups, no open SSH, ...);
        its output is neither shown nor kept (on_output=None), only the outputs are read."""
        return stack.up(
            on_output=None,
            on_error=None,
            refresh=refresh,
            policy_packs=[str(self.program / "policy")],
            suppress_outputs=True,
            color="never",
        )

    @staticmethod
    def _protected(stack: auto.Stack) -> bool:
        deployment = stack.export_stack().deployment or {}
        for resource in deployment.get("resources") or []:
            if resource.get("type") == SERVER_TYPE:
                state = resource.get("outputs") or resource.get("inputs") or {}
                if state.get("deleteProtection"):
                    return True
        return False

    def _server(self, customer_id: str, outputs: Mapping[str, Any]) -> ServerHandle:
        def value(key: str) -> str:
            found = outputs.get(key)
            return "" if found is None or found.value is None else str(found.value)

        server_id, ipv4, ipv6 = value("serverId"), value("ipv4"), value("ipv6")
        return ServerHandle(
            customer_id,
            self.name,
            f"norex-{customer_id}",  # the program's server name (ServerSettings.server_name)
            ipv4,
            ipv6,
            connection=self._connection(customer_id, server_id, ipv4) if ipv4 else {},
            # SSH on the server's own firewall: from wherever Hetzner's firewall lets it come (ops and the
            # control plane, which converges it); the agent only from the control plane.
            ops_cidrs=tuple(self.valid.management_cidrs),
            control_plane_cidrs=tuple(self.valid.control_plane_cidrs),
        )

    def _connection(self, customer_id: str, server_id: str, ipv4: str) -> dict[str, Any]:
        """How Ansible reaches the server.

        Host keys: the first contact accepts and pins the key (accept-new) in a file of this server alone,
        so a later key change is refused, and an address Hetzner hands to a new server never clashes.
        """
        self.known_hosts_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        known_hosts = self.known_hosts_dir / f"{customer_id}-{server_id or 'unknown'}"
        ssh = ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=accept-new"]
        variables: dict[str, Any] = {
            "ansible_host": ipv4,
            "ansible_port": SSH_PORT,
            "ansible_user": "root",
            "ansible_python_interpreter": "/usr/bin/python3",
        }
        if self.settings.ssh_key_file is not None:
            variables["ansible_ssh_private_key_file"] = str(self.settings.ssh_key_file)
            ssh += ["-o", "IdentitiesOnly=yes"]
        variables["ansible_ssh_common_args"] = shlex.join(ssh)
        return variables

    # -- errors ---------------------------------------------------------------------------------------------

    def cancel_command(self, stack_name: str) -> str:
        """What ops run to clear a stale lock (from the program's folder, whose Pulumi.yaml names the project)."""
        backend = shlex.quote(without_credentials(self.settings.pulumi_backend_url))
        return (
            f"cd {shlex.quote(str(self.program))} && "
            f"PULUMI_BACKEND_URL={backend} pulumi cancel --yes --stack {stack_name}"
        )

    def _locked(self, stack_name: str, text: str) -> NorexError:
        locks = [(m["host"], int(m["pid"]), m["at"]) for m in LOCK_LINE.finditer(text)]
        now = time.time()
        if locks and all(lock_is_stale(host, pid, at, now) for host, pid, at in locks):
            host, pid, at = locks[0]
            return StackLocked(
                f"stack {stack_name} is locked by a Pulumi run that is no longer running (pid {pid} on {host}, "
                f"since {at}); norex never clears a lock: make sure nobody is working on this stack, then run "
                f"`{self.cancel_command(stack_name)}`"
            )
        return RetryLater(f"stack {stack_name} is being updated by another Pulumi run; the job is retried later")

    @contextlib.contextmanager
    def _pulumi(self, operation: str, stack_name: str) -> Iterator[None]:
        """Pulumi's exceptions as one-line NorexErrors (their text holds the command's whole output)."""
        try:
            yield
        except NorexError:
            raise
        except auto_errors.ConcurrentUpdateError as exc:
            raise self._locked(stack_name, str(exc)) from None
        except auto_errors.CommandError as exc:
            text = str(exc)
            if "passphrase" in text and ("incorrect" in text or "must be set" in text):
                raise MissingPrerequisite(
                    f"PULUMI_CONFIG_PASSPHRASE is missing or is not the passphrase of stack {stack_name}"
                ) from None
            if "(unauthorized)" in text or "unable to authenticate" in text:
                raise MissingPrerequisite("Hetzner refused HCLOUD_TOKEN (unauthorized): check the token") from None
            raise PulumiFailed(f"pulumi {operation} failed for stack {stack_name}: {summary(text)}") from None
        except (FileNotFoundError, PermissionError) as exc:
            if Path(str(exc.filename or "")).name == "pulumi":
                raise MissingPrerequisite(CLI_MISSING) from None
            raise
