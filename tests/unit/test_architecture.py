"""The package's shape (../shared/DESIGN.md): arrows only point down, and the imports that must never exist don't.

Imports are read from the source (every `import` anywhere in a module, lazy ones in functions included,
since a lazy import is an arrow too). `from a.b import c` is an arrow to the module a.b.c when that is a
module, else to a.b. Every module is also imported once, in a fresh interpreter, so each one loads.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "norex"
COLLECTION = REPO / "collections" / "ansible_collections" / "norex" / "vpn"
# Runs Alembic's context at import: loaded by Alembic only.
NOT_IMPORTABLE_ALONE = {"norex.db.migrations.env"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_names(path: Path) -> set[str]:
    """Every module this file imports, absolute, as written (a.b.c for `from a.b import c` if that is ours)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in modules() else base)
    return found - {"__future__"}


@cache
def graph() -> dict[str, set[str]]:
    """Our modules and the modules of ours each imports."""
    ours = modules()
    return {name: {m for m in imported_names(path) if m in ours} for name, path in ours.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def reachable(start: str) -> set[str]:
    """Every module of ours start imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for nxt in graph()[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def within(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


# -- the checks themselves can fail ------------------------------------------------------------------------------


def test_the_cycle_finder_finds_a_circle_and_passes_a_tree() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_relative_and_lazy_imports_are_arrows(tmp_path: Path) -> None:
    assert "norex.provision.lab" in imported_names(PACKAGE / "provision" / "__init__.py")  # inside a function
    assert "norex.provision.interface" in graph()["norex.provision.lab"]  # from ... import Name


# -- the rules ---------------------------------------------------------------------------------------------------


def test_no_import_circle() -> None:
    assert cycles(graph()) == []


def test_every_module_imports_on_its_own(tmp_path: Path) -> None:
    names = sorted(set(modules()) - NOT_IMPORTABLE_ALONE)
    code = (
        "import importlib, json, sys\n"
        "failed = {}\n"
        f"for name in {names!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed[name] = f'{type(exc).__name__}: {exc}'\n"
        "print(json.dumps(failed))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOREX_")}
    env["XDG_DATA_HOME"] = str(tmp_path)  # the queue module makes its folder when imported
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {}


def test_the_pure_core_imports_nothing_that_does_io() -> None:
    """What a Stripe event means is a pure function: no Stripe client, database session or subprocess."""
    imported = imported_names(modules()["norex.billing.core"])
    assert imported <= {"hashlib", "collections.abc", "dataclasses", "typing"}, imported


def test_the_web_app_only_records_and_enqueues() -> None:
    """The web app never reaches a provisioning backend, Ansible or the lab, not even through another module;
    its CLI module hands it the queue's enqueue. Plain data it may reach: the peer set's shape
    (norex.converge.variables) and the server handle (norex.provision.interface), through the devices store
    and the agent client that reads live status."""
    forbidden = (
        "norex.provision.lab", "norex.provision.hcloud", "norex.converge.runner", "norex.lab",
        "norex.jobs.reconcile", "norex.audit.runner",
    )  # fmt: skip
    for name in modules():
        if within(name, "norex.web") and name != "norex.web.cli":
            reached = sorted(m for m in reachable(name) if within(m, *forbidden))
            assert reached == [], f"{name} reaches {reached}"
            external = {m for m in imported_names(modules()[name]) if within(m, "ansible_runner", "pulumi", "huey")}
            assert external == set(), f"{name} imports {external}"


def test_only_the_lab_backend_and_the_commands_know_the_lab() -> None:
    allowed = ("norex.lab", "norex.provision.lab", "norex.cli", "norex.doctor", "norex.demo", "norex.audit.cli")
    for name, imports in graph().items():
        if not within(name, *allowed):
            assert not any(within(m, "norex.lab") for m in imports), f"{name} imports the lab"


def test_only_the_hcloud_backend_touches_pulumi() -> None:
    """Nothing in norex/ imports the Pulumi program (pulumi/) or the SDK but the hcloud backend (the doctor
    asks the backend)."""
    for name, path in modules().items():
        if within(name, "norex.provision.hcloud"):
            continue
        source = path.read_text()
        assert "norex_pulumi" not in source and "norex_policies" not in source, name
        external = {m for m in imported_names(path) if within(m, "pulumi", "pulumi_hcloud", "pulumi_policy")}
        assert external == set(), f"{name} imports {external}"


def test_only_the_converge_runner_runs_ansible() -> None:
    for name, path in modules().items():
        if name != "norex.converge.runner":
            assert not any(within(m, "ansible_runner") for m in imported_names(path)), name


def test_backends_see_only_the_interface_of_the_control_plane() -> None:
    """A backend borrows nothing from the modules above it (commands, jobs, converge)."""
    above = ("norex.jobs", "norex.converge", "norex.cli", "norex.doctor", "norex.web", "norex.billing")
    for name, imports in graph().items():
        if within(name, "norex.provision"):
            assert not any(within(m, *above) for m in imports), f"{name} imports {sorted(imports)}"


def test_the_roles_never_depend_on_the_control_plane() -> None:
    for path in COLLECTION.rglob("*.py"):
        imported = {m.split(".")[0] for m in ast_imports(path)}
        assert "norex" not in imported, path


def ast_imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


@pytest.mark.parametrize("name", ["norex.converge.variables", "norex.tunnel"])
def test_the_ansible_contract_is_pure(name: str) -> None:
    """The variables handed to site.yml are built without I/O (no database, subprocess, network)."""
    io = ("sqlalchemy.orm", "subprocess", "socket", "httpx", "ansible_runner", "norex.db", "norex.jobs")
    for module in {name, *reachable(name)}:
        external = {m for m in imported_names(modules()[module]) if within(m, *io)}
        assert external == set(), f"{name} reaches {module}, which imports {external}"
