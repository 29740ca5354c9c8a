"""The hcloud backend: one Pulumi stack per customer on Hetzner Cloud (backend), the program and its
settings (program), the CLI and the environment it needs (pulumi_cli), Pulumi's errors (errors), the
files kept per stack (files)."""

from __future__ import annotations

from norex.provision.hcloud.backend import HcloudProvisioner
from norex.provision.hcloud.errors import PulumiFailed, RetryLater, StackLocked
from norex.provision.hcloud.program import PROBE_CUSTOMER_ID, server_settings, stack_config
from norex.provision.hcloud.pulumi_cli import CLI_MISSING, PASSPHRASE_VARS, find_pulumi, pulumi_command

__all__ = [
    "CLI_MISSING",
    "PASSPHRASE_VARS",
    "PROBE_CUSTOMER_ID",
    "HcloudProvisioner",
    "PulumiFailed",
    "RetryLater",
    "StackLocked",
    "find_pulumi",
    "pulumi_command",
    "server_settings",
    "stack_config",
]
