"""The Pulumi CLI on a worker, and what the worker's environment must hold for it (names only)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from pulumi import automation as auto
from pulumi.automation import errors as auto_errors
from semver import VersionInfo

from norex.errors import MissingPrerequisite

# The oldest CLI this backend is written against (the SDK pin in pyproject.toml).
MIN_CLI_VERSION = VersionInfo.parse("3.100.0")
PASSPHRASE_VARS = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")
CLI_MISSING = (
    "the Pulumi CLI is not installed: install it on the worker with Pulumi's installer (norex looks on PATH "
    "and in ~/.pulumi/bin)"
)


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
