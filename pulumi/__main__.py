"""Pulumi entry point (`pulumi up -s <stack>` in this folder): one customer's server from the stack's config."""

from norex_pulumi.program import build, stack_config

build(stack_config())
