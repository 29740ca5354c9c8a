"""The norex.vpn collection, the playbooks and the molecule scenario stay
lint-clean, buildable and syntactically valid.

Runs the ansible tools installed next to the running interpreter, so the
tests use the project's pinned ansible-core and ansible-lint. No root and no
network needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "collections" / "ansible_collections" / "norex" / "vpn"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed next to {sys.executable}")
    return str(path)


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # The tools call each other (ansible-lint runs ansible-playbook); find the same ones.
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    # Keep tool state out of the home directory and the repository.
    env["ANSIBLE_HOME"] = str(tmp_path / "ansible-home")
    env["ANSIBLE_LOCAL_TEMP"] = str(tmp_path / "ansible-tmp")
    env.pop("ANSIBLE_CONFIG", None)
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_ansible_lint_is_clean(tmp_path: Path) -> None:
    result = _run([_tool("ansible-lint"), "--offline", "--nocolor"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


def test_collection_builds(tmp_path: Path) -> None:
    out = tmp_path / "build"
    result = _run(
        [
            _tool("ansible-galaxy"),
            "collection",
            "build",
            str(COLLECTION),
            "--output-path",
            str(out),
            "--force",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "norex-vpn-0.1.0.tar.gz").is_file()


def test_site_playbook_syntax(tmp_path: Path) -> None:
    result = _run(
        [_tool("ansible-playbook"), "--syntax-check", "-i", "localhost,", "playbooks/site.yml"],
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
