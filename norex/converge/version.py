"""The version a converge applies: a digest of what site.yml is made of and of what the plane pushes.

Two converges with the same version make the same server (the collection, the playbooks, the variables'
source in the settings: the blocklist). `norex rollout` converges every server whose last converge had
another version; each server keeps only its current version, never a history.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from norex.project import project_dir
from norex.settings import Settings

# What site.yml runs: the playbooks and the collection (roles, plugins, templates), and ansible.cfg.
SOURCES = ("playbooks", "collections", "ansible.cfg")
SKIP = {"__pycache__", ".pytest_cache"}


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not SKIP & set(p.parts) and not p.name.endswith((".pyc", ".tar.gz"))
    )


def _sources_digest() -> Any:
    project = project_dir()
    digest = hashlib.sha256()
    for name in SOURCES:
        for path in _files(project / name):
            digest.update(str(path.relative_to(project)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest


def roles_version() -> str:
    """sha256 (first 16 hex digits) over every source file's path and content: what the lab's prepared image
    was built with (norex/lab/prepared.py)."""
    return _sources_digest().hexdigest()[:16]


def converge_version(settings: Settings) -> str:
    """sha256 (first 16 hex digits) over every source file's path and content, and the blocklist's content."""
    digest = _sources_digest()
    digest.update(b"blocklist\0" + hashlib.sha256(settings.fleet_blocklist_file.read_bytes()).digest())
    return digest.hexdigest()[:16]
