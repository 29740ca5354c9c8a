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
import functools
import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from pulumi import automation as auto
from pulumi.automation import errors as auto_errors
from semver import VersionInfo

from norex.configure import project_dir
from norex.doctor import without_credentials
from norex.errors import MissingPrerequisite, NorexError, UsageError
from norex.provision import CUSTOMER_ID_RE, Server
from norex.settings import Settings, data_dir, load_settings

SERVER_TYPE = "hcloud:index/server:Server"
SSH_PORT = 22
SSH_TIMEOUT_SECONDS = 300.0
# No `up` or `destroy` of one server takes this long: a lock this old belongs to a run that died.
STALE_LOCK_SECONDS = 3600
# The oldest CLI this backend is written against (the SDK pin in pyproject.toml).
MIN_CLI_VERSION = VersionInfo.parse("3.100.0")
PASSPHRASE_VARS = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")
# Validates the settings before any customer exists (at worker start, in `norex doctor`).
PROBE_CUSTOMER_ID = "c-00000000"
CLI_MISSING = (
    "the Pulumi CLI is not installed: install it on the worker with Pulumi's installer (norex looks on PATH "
    "and in ~/.pulumi/bin)"
)
# Which NOREX_* variable sets which stack config key (the rest are the program's defaults).
ENV_OF_KEY = {
    "serverType": "NOREX_HCLOUD_SERVER_TYPE",
    "location": "NOREX_HCLOUD_LOCATION",
    "image": "NOREX_HCLOUD_IMAGE",
    "opsCidrs": "NOREX_OPS_CIDRS",
    "controlPlaneCidrs": "NOREX_CONTROL_PLANE_CIDRS",
    "opsSshKeyIds": "NOREX_HCLOUD_OPS_SSH_KEY_IDS",
    "protection": "NOREX_HCLOUD_PROTECTION",
}
# "  file:///.../c-1.json: created by ops@host (pid 4242) at 2026-01-02T03:04:05Z" (Pulumi's DIY backend lock)
LOCK_LINE = re.compile(r"created by \S*?@(?P<host>\S+) \(pid (?P<pid>\d+)\) at (?P<at>\S+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_EMAIL = re.compile(r"\S+@\S+\.\S+")


class RetryLater(NorexError):
    """Another Pulumi run holds the stack now; the worker retries the job with backoff."""


class StackLocked(NorexError):
    """A lock left by a Pulumi run that is no longer running: ops clear it by hand, norex never does."""


class PulumiFailed(NorexError):
    """A Pulumi operation failed; the message carries its error line, never its whole output."""


# -- the program and its settings ----------------------------------------------------------------------


def program_dir() -> Path:
    """The Pulumi project (pulumi/ in the norex checkout, or in NOREX_PROJECT_DIR)."""
    folder = project_dir() / "pulumi"
    if not (folder / "Pulumi.yaml").is_file() or not (folder / "__main__.py").is_file():
        raise MissingPrerequisite(f"no Pulumi program in {folder} (set NOREX_PROJECT_DIR to the norex checkout)")
    return folder


@functools.cache
def program_config(folder: Path) -> ModuleType:
    """The program's own validation (pulumi/norex_pulumi/config.py: pure, no Pulumi import).

    Loaded from its file, so pulumi/ never goes on sys.path (its folder name shadows the SDK's).
    """
    name = "_norex_pulumi_config"
    spec = importlib.util.spec_from_file_location(name, folder / "norex_pulumi" / "config.py")
    if spec is None or spec.loader is None:
        raise MissingPrerequisite(f"no norex_pulumi/config.py in {folder}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _env_problem(problem: str) -> str:
    """A problem of the stack config, told in terms of the NOREX_* variable that sets it."""
    key, _, text = problem.partition(": ")
    env = ENV_OF_KEY.get(key.split("[")[0])
    text = re.sub(r"\s*\(`pulumi config set[^)]*\)", "", text)
    return f"{env}{key[len(key.split('[')[0]) :]}: {text}" if env else problem


def server_settings(settings: Settings, customer_id: str, *, protection: bool | None = None) -> Any:
    """The customer's server as the program will declare it (norex_pulumi.config.ServerSettings), checked by
    the program's own rules before Pulumi runs; a problem is named by the NOREX_* variable that causes it."""
    config = program_config(program_dir())
    raw: dict[str, Any] = {
        "customerId": customer_id,
        "serverType": settings.hcloud_server_type or config.DEFAULTS["serverType"],
        "location": settings.hcloud_location or config.DEFAULTS["location"],
        "image": settings.hcloud_image or config.DEFAULTS["image"],
        "opsCidrs": list(settings.ops_cidrs),
        "controlPlaneCidrs": list(settings.control_plane_cidrs),
        "opsSshKeyIds": list(settings.hcloud_ops_ssh_key_ids),
        "wireguardPort": config.DEFAULTS["wireguardPort"],
        "agentPort": config.DEFAULTS["agentPort"],
        "protection": settings.hcloud_protection if protection is None else protection,
    }
    try:
        return config.parse_settings(raw)
    except config.ConfigError as exc:
        raise UsageError("hcloud backend settings: " + "; ".join(map(_env_problem, exc.problems))) from None


def stack_config(settings: Settings, customer_id: str, *, protection: bool | None = None) -> dict[str, str]:
    """Every key of the stack's `norex:` config, as strings (Pulumi config; lists as JSON text)."""
    valid = server_settings(settings, customer_id, protection=protection)
    values = {
        "customerId": valid.customer_id,
        "serverType": valid.server_type,
        "location": valid.location,
        "image": valid.image,
        "opsCidrs": json.dumps(list(valid.ops_cidrs)),
        "controlPlaneCidrs": json.dumps(list(valid.control_plane_cidrs)),
        "opsSshKeyIds": json.dumps(list(valid.ops_ssh_key_ids)),
        "wireguardPort": str(valid.wireguard_port),
        "agentPort": str(valid.agent_port),
        "protection": "true" if valid.protection else "false",
    }
    namespace = program_config(program_dir()).NAMESPACE
    return {f"{namespace}:{key}": value for key, value in values.items()}


def environment_problems(environ: Mapping[str, str] = os.environ) -> list[str]:
    """What the worker's environment lacks for Pulumi and Hetzner (names only: values are secrets)."""
    problems = []
    if not environ.get("HCLOUD_TOKEN"):
        problems.append(
            "HCLOUD_TOKEN is not set: the hcloud provider needs a Hetzner Cloud API token (read/write) "
            "in the worker's environment"
        )
    if not any(environ.get(name) for name in PASSPHRASE_VARS):
        problems.append(
            "PULUMI_CONFIG_PASSPHRASE is not set: each stack's secrets are encrypted with it; set it (or "
            "PULUMI_CONFIG_PASSPHRASE_FILE) in the worker's environment and keep it with the state's backups"
        )
    return problems


def _installed_pulumi() -> Path:
    return Path.home() / ".pulumi" / "bin" / "pulumi"


def find_pulumi() -> Path | None:
    """The CLI on PATH, else where Pulumi's installer puts it."""
    found = shutil.which("pulumi")
    if found:
        return Path(found)
    installed = _installed_pulumi()
    return installed if os.access(installed, os.X_OK) else None


def pulumi_command() -> auto.PulumiCommand:
    """The CLI, checked once (`pulumi version`, at least MIN_CLI_VERSION); every workspace reuses it."""
    installed = _installed_pulumi()
    # Not on PATH but installed: the SDK runs root/bin/pulumi. Neither: the SDK's own attempt fails below.
    root = str(installed.parent.parent) if not shutil.which("pulumi") and os.access(installed, os.X_OK) else None
    try:
        return auto.PulumiCommand(root=root, version=MIN_CLI_VERSION)
    except (FileNotFoundError, PermissionError):
        raise MissingPrerequisite(CLI_MISSING) from None
    except auto_errors.InvalidVersionError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "unknown version"
        raise MissingPrerequisite(f"the Pulumi CLI cannot be used: {reason}") from None
    except subprocess.CalledProcessError as exc:
        raise MissingPrerequisite(f"`pulumi version` failed (exit {exc.returncode}); check the CLI install") from None


def wait_for_ssh(host: str, port: int = SSH_PORT, timeout: float = SSH_TIMEOUT_SECONDS, interval: float = 2.0) -> None:
    """Return once sshd sends its banner (an accepted TCP connection alone can come before sshd is ready)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(5.0, timeout)) as conn:
                conn.settimeout(min(5.0, timeout))
                banner = b""
                while len(banner) < 4:
                    chunk = conn.recv(4 - len(banner))
                    if not chunk:
                        break
                    banner += chunk
                if banner == b"SSH-":
                    return
        except OSError:
            pass
        if time.monotonic() + interval > deadline:
            raise TimeoutError(f"no SSH banner on port {port} within {timeout:.0f} s")
        time.sleep(interval)


def stack_name_for(customer_id: str) -> str:
    """The stack is the opaque customer id itself; anything else (an email, a Stripe id) is refused
    without being echoed, and before Pulumi runs."""
    if not isinstance(customer_id, str) or not CUSTOMER_ID_RE.fullmatch(customer_id):
        raise UsageError("not an opaque customer id (c- and 8-32 lowercase hex digits): no stack is named after it")
    return customer_id


# -- files -------------------------------------------------------------------------------------------------


def _write_private(path: Path, data: bytes) -> None:
    """Write atomically, readable by its owner only (a stack's settings hold its encryption salt)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _salt(workspace: auto.LocalWorkspace, stack_name: str) -> str | None:
    try:
        return workspace.stack_settings(stack_name).encryption_salt
    except FileNotFoundError:
        return None


def _summary(text: str) -> str:
    """The line of Pulumi's output that says what went wrong, without colours, addresses or emails."""
    lines = [_ANSI.sub("", line).strip() for line in text.splitlines()]
    errors = [line for line in lines if line.startswith("error:") or " error: " in f" {line}"]
    specific = [line for line in errors if not re.fullmatch(r"error: (update|destroy|refresh) failed", line)]
    chosen = (specific or errors or ["no error line in Pulumi's output"])[0]
    chosen = re.sub(r"\b\d{1,3}(\.\d{1,3}){3}\b|\b[0-9a-f]{1,4}(:[0-9a-f]{0,4}){2,7}\b", "<address>", chosen)
    chosen = _EMAIL.sub("<redacted>", chosen)
    return chosen[:240]


def _lock_is_stale(host: str, pid: int, taken_at: str, now: float) -> bool:
    """A lock is stale when its process is gone (this host), or when it is older than any real run."""
    if host == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # it runs, as another user
        return False
    try:
        since = datetime.fromisoformat(taken_at).timestamp()
    except ValueError:
        return False
    return now - since > STALE_LOCK_SECONDS


# -- the backend -------------------------------------------------------------------------------------------


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
        self._ssh_ready = ssh_ready or wait_for_ssh
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

    def create(self, customer_id: str) -> Server:
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

    def find(self, customer_id: str) -> Server | None:
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
            _write_private(self._settings_file(stack_name), durable.read_bytes())
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
            if not _salt(workspace, stack_name):
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
            _write_private(self._durable(stack_name), source.read_bytes())

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

    def _server(self, customer_id: str, outputs: Mapping[str, Any]) -> Server:
        def value(key: str) -> str:
            found = outputs.get(key)
            return "" if found is None or found.value is None else str(found.value)

        server_id, ipv4, ipv6 = value("serverId"), value("ipv4"), value("ipv6")
        return Server(
            customer_id,
            self.name,
            f"norex-{customer_id}",  # the program's server name (ServerSettings.server_name)
            ipv4,
            ipv6,
            self._ansible_vars(customer_id, server_id, ipv4) if ipv4 else {},
        )

    def _ansible_vars(self, customer_id: str, server_id: str, ipv4: str) -> dict[str, Any]:
        """How Ansible reaches the server, and what the roles need from the control plane.

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
        # SSH on the server's own firewall: from wherever Hetzner's firewall lets it come (ops and the
        # control plane, which converges it); the agent only from the control plane.
        variables["norex_ops_cidrs"] = list(self.valid.management_cidrs)
        variables["norex_control_plane_cidrs"] = list(self.valid.control_plane_cidrs)
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
        if locks and all(_lock_is_stale(host, pid, at, now) for host, pid, at in locks):
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
            raise PulumiFailed(f"pulumi {operation} failed for stack {stack_name}: {_summary(text)}") from None
        except (FileNotFoundError, PermissionError) as exc:
            if Path(str(exc.filename or "")).name == "pulumi":
                raise MissingPrerequisite(CLI_MISSING) from None
            raise
