"""Each role's defaults/main.yml and the `main` entry point of its meta/argument_specs.yml say the same thing.

Every default is described in the spec with the same default value, every option of `main` that has a default
is in defaults/main.yml, and every default has its own comment directly above it (the style rule in DESIGN.md).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "collections/ansible_collections/norex/vpn/roles"
ROLE_NAMES = sorted(p.name for p in ROLES.iterdir() if p.is_dir())
TOP_LEVEL_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):")


def _defaults(role: str) -> dict:
    path = ROLES / role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def _main_options(role: str) -> dict:
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    return specs["main"].get("options") or {}


def test_every_role_is_checked():
    assert {"base", "firewall", "no_logs", "preflight", "resolver", "wireguard"} <= set(ROLE_NAMES)


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_every_default_is_described_with_the_same_value(role):
    options = _main_options(role)
    for name, value in _defaults(role).items():
        assert name in options, f"{role}: {name} is in defaults/main.yml but not in the main entry point's options"
        assert "default" in options[name], f"{role}: the spec of {name} gives no default"
        # Compared as YAML, so that true is not 1 and "12" is not 12.
        assert yaml.safe_dump(options[name]["default"]) == yaml.safe_dump(value), (
            f"{role}: {name} defaults to {value!r} in defaults/main.yml but {options[name]['default']!r} in the spec"
        )


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_every_described_default_is_in_defaults(role):
    defaults = _defaults(role)
    missing = [name for name, spec in _main_options(role).items() if "default" in spec and name not in defaults]
    assert missing == [], f"{role}: the spec gives defaults that defaults/main.yml lacks: {missing}"


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_every_default_has_a_comment_directly_above(role):
    path = ROLES / role / "defaults" / "main.yml"
    lines = path.read_text().splitlines() if path.is_file() else []
    bare = [
        match.group(1)
        for number, line in enumerate(lines)
        if (match := TOP_LEVEL_KEY.match(line)) and not (number > 0 and lines[number - 1].startswith("#"))
    ]
    assert bare == [], f"{role}: defaults without a comment directly above: {bare}"
