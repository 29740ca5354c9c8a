"""The Pulumi program in pulumi/ and the stack settings the control plane gives it, checked by the
program's own rules before Pulumi runs."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from norex.errors import MissingPrerequisite, UsageError
from norex.project import pulumi_dir
from norex.provision.interface import CUSTOMER_ID_RE
from norex.settings import Settings
from norex.tunnel import TUNNEL

# Validates the settings before any customer exists (at worker start, in `norex doctor`).
PROBE_CUSTOMER_ID = "c-00000000"
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


def program_dir() -> Path:
    """The Pulumi project (pulumi/ in the norex checkout, or in NOREX_PROJECT_DIR)."""
    return pulumi_dir()


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
        "wireguardPort": TUNNEL.port,  # the tunnel plan: the role listens there
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


def stack_name_for(customer_id: str) -> str:
    """The stack is the opaque customer id itself; anything else (an email, a Stripe id) is refused
    without being echoed, and before Pulumi runs."""
    if not isinstance(customer_id, str) or not CUSTOMER_ID_RE.fullmatch(customer_id):
        raise UsageError("not an opaque customer id (c- and 8-32 lowercase hex digits): no stack is named after it")
    return customer_id
