"""norex.vpn.files (action plugin and module) on this machine's own files, through ansible-playbook: one module
run writes a set whole or not at all, changes nothing the second time, and check and diff mode change nothing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def play(tmp_path: Path, files: list[dict], *flags: str) -> dict:
    """Run one norex.vpn.files task on localhost; the task's result."""
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "a.conf.j2").write_text("{{ ansible_managed | comment }}\nvalue = {{ value }}\n")
    book = tmp_path / "play.yml"
    out = tmp_path / "result.json"
    book.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "vars": {"ansible_python_interpreter": sys.executable, "value": 1},
                    "tasks": [
                        {"name": "files", "norex.vpn.files": {"files": files}, "register": "r"},
                        {
                            "name": "keep",
                            "ansible.builtin.copy": {"content": "{{ r | to_json }}", "dest": str(out)},
                            "check_mode": False,
                        },
                    ],
                }
            ]
        )
    )
    out.unlink(missing_ok=True)
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(book), *flags],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        return {"failed": True, "output": proc.stdout + proc.stderr}
    return json.loads(out.read_text())


def test_a_set_is_written_once_then_left_alone(tmp_path: Path) -> None:
    d = tmp_path / "out"
    (tmp_path / "gone").write_text("x")
    (d / "existing").parent.mkdir()
    (d / "existing").write_text("mine\n")
    files = [
        {"path": str(d / "a.conf"), "template": "a.conf.j2", "mode": "0640"},
        {"path": str(d / "b.conf"), "content": "hello\n", "mode": "0600", "validate": "grep -q hello %s"},
        {"path": str(d / "link"), "state": "link", "src": "/dev/null"},
        {"path": str(d / "dir"), "state": "directory", "mode": "0700"},
        {"path": str(tmp_path / "gone"), "state": "absent"},
        {"path": str(d / "existing"), "content": "theirs\n", "keep": True},
    ]
    first = play(tmp_path, files)
    assert first["changed"] and first["changed_paths"] == [f["path"] for f in files[:5]]
    assert (d / "a.conf").read_text().endswith("value = 1\n") and "Ansible managed" in (d / "a.conf").read_text()
    assert stat.S_IMODE((d / "a.conf").stat().st_mode) == 0o640 and stat.S_IMODE((d / "b.conf").stat().st_mode) == 0o600
    assert os.readlink(d / "link") == "/dev/null" and stat.S_IMODE((d / "dir").stat().st_mode) == 0o700
    assert not (tmp_path / "gone").exists() and (d / "existing").read_text() == "mine\n"
    second = play(tmp_path, files)
    assert not second["changed"] and second["changed_paths"] == []
    (d / "b.conf").chmod(0o644)
    assert play(tmp_path, files)["changed_paths"] == [str(d / "b.conf")]  # a mode is put back too
    assert stat.S_IMODE((d / "b.conf").stat().st_mode) == 0o600


def test_check_and_diff_mode_change_nothing(tmp_path: Path) -> None:
    target = tmp_path / "a.conf"
    files = [{"path": str(target), "template": "a.conf.j2", "mode": "0644"}]
    play(tmp_path, files)
    before = target.read_text()
    assert not play(tmp_path, files, "--check", "--diff")["changed"]
    changed = play(tmp_path, [{"path": str(target), "content": "value = 2\n", "mode": "0644"}], "--check", "--diff")
    assert changed["changed"] and changed["changed_paths"] == [str(target)] and target.read_text() == before
    assert changed["diff"][0]["after"] == "value = 2\n" and changed["diff"][0]["before"] == before
    secret = play(tmp_path, [{"path": str(target), "content": "key\n", "secret": True}], "--check", "--diff")
    assert secret["diff"][0]["after"] == "" and "key" not in json.dumps(secret["diff"])


def test_a_refused_file_writes_nothing_of_the_set(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.conf", tmp_path / "bad.conf"
    files = [
        {"path": str(good), "content": "fine\n"},
        {"path": str(bad), "content": "broken\n", "validate": "grep -q hello %s"},
    ]
    result = play(tmp_path, files)
    assert result["failed"] and f"{bad}: grep refused the new content" in result["output"]
    assert not good.exists() and not bad.exists()
    assert not list(tmp_path.glob(".norex-files.*"))  # no staged file left behind
