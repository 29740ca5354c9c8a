"""The norex.vpn collection, the playbooks and the molecule scenario stay
lint-clean, buildable and syntactically valid.

Runs the ansible tools installed next to the running interpreter, so the
tests use the project's pinned ansible-core and ansible-lint. No root and no
network needed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
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


def _list_tasks(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run([_tool("ansible-playbook"), "-i", "localhost,", *args, "playbooks/site.yml"], tmp_path)


def _site_tags(tmp_path: Path) -> list[str]:
    out = _list_tasks(tmp_path, "--list-tags").stdout
    found = re.findall(r"TASK TAGS: \[([^\]]*)\]", out)
    return sorted({tag.strip() for line in found for tag in line.split(",") if tag.strip()} - {"always"})


NO_LOGS_PURGE = "Purge syslog daemons, auditing, process accounting and the packet capture tools"
BASE_INSTALL = "Install the packages and the security updates in one run"
# no_logs' one read of what its capture, cloud-init and tmpfs steps branch on.
NO_LOGS_READ = "Read the network files in use, whether cloud-init is there and the tmpfs mounts"
# Tasks that must run with a tag besides its own: what they read is set there (the input checks, preflight and
# the argument checks run with every tag).
TAG_NEEDS = {
    "journald": ["Write the journald drop-in", "Remove the persistent journal"],
    "tmpfs": [
        NO_LOGS_READ,
        "Write the tmpfs mount units, the unit that empties their mount points at boot, and their tools",
        "Empty the mount points that have no tmpfs yet",
        "Apply what changed on the mounted tmpfs file systems",
    ],
    "loggers": ["Read the installed packages the role branches on", NO_LOGS_PURGE],
    "capture": [
        "Read the installed packages the role branches on",
        NO_LOGS_READ,
        "Pin the packet capture tools out of reach",
        NO_LOGS_PURGE,
    ],
    "cloud_init": [NO_LOGS_READ, "Keep cloud-init from logging, and remove what it logged and stored"],
    "sysctl": ["Choose the sysctl settings this server can apply", "Write the sysctl settings"],
    "ssh": [
        "Write the SSH drop-in, and give PAM a default locale file",
        "Check that Ansible still gets in with its key",
    ],
    "accounts": [
        "Remove and lock the passwords of the listed accounts",
        "Check that Ansible still gets in with its key",
    ],
    "time_sync": ["Read which packages dpkg knows", BASE_INSTALL, "Enable and start systemd-timesyncd"],
    "unattended_upgrades": ["Read which packages dpkg knows", BASE_INSTALL, "Enable apt's daily timers"],
    "nftables": [
        "Check the firewall inputs",
        "Gather the facts the firewall needs",
        "Check that the address this run connects from may still reach SSH",
        "Install nftables",
        "Write the nftables ruleset",
    ],
    "forwarding": ["Check the uplink interface", "Turn on IPv4 and IPv6 forwarding"],
    "conntrack": [
        "Check the firewall inputs",
        "Bound how long the connection table keeps a flow, and load nf_conntrack at boot before that applies",
    ],
    "wireguard": [
        "Probe the kernel where norex.vpn.preflight has not",
        "Compare the running interface with the config",
    ],
    "unbound": [
        "Export the server's WireGuard public key and tunnel addresses",
        "Install Unbound and the root data",
        "Write the Unbound config, remove Debian's anchor and remote-control snippets",
    ],
    "blocklist": [
        "Install Unbound and the root data",
        "Install the blocklist and tally commands",
        "Apply the staged blocklist without reloading Unbound",
    ],
    "resolver": [
        "Export the server's WireGuard public key and tunnel addresses",
        "Write the Unbound config, remove Debian's anchor and remote-control snippets",
    ],
}
ALWAYS = [
    "Check the firewall's inputs",
    "Check the WireGuard inputs",
    "Check the resolver inputs",
    "norex.vpn.preflight : Assert Ansible connects as root",
    "norex.vpn.preflight : Set preflight_virtualization",
]


def test_every_tag_lists_its_tasks_and_what_they_need(tmp_path: Path) -> None:
    tags = _site_tags(tmp_path)
    assert {"firewall", "wireguard", "resolver", "no_logs", "base", "journald", "tmpfs", "ssh", "nftables"} <= set(tags)
    assert set(TAG_NEEDS) <= set(tags)
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = pool.map(lambda tag: _list_tasks(tmp_path, "--list-tasks", "--tags", tag), tags)
        listed = dict(zip(tags, runs, strict=True))
    for tag, result in listed.items():
        assert result.returncode == 0, result.stdout + result.stderr
        lines = [line for line in result.stdout.splitlines() if "\tTAGS: [" in line]
        tasks = [line.split("\tTAGS: ")[0].strip() for line in lines]
        own = [line.split("\tTAGS: ")[0].strip() for line in lines if "always" not in line.split("\tTAGS: ")[1]]
        for needed in ALWAYS:
            assert any(task.endswith(needed) for task in tasks), f"--tags {tag} does not run {needed!r}"
        for needed in TAG_NEEDS.get(tag, []):
            # (an include_role task is listed without its role's name)
            assert any(task.endswith(" : " + needed) or task == needed for task in own), (
                f"--tags {tag} does not run {needed!r}"
            )
        assert own, f"--tags {tag} runs nothing of its own"


# preflight's WireGuard probe, which the wireguard role imports where preflight has not run.
WIREGUARD_PROBE = {"Probe whether the kernel can create a WireGuard interface", "Set preflight_wireguard"}
# The roles' includes of norex.vpn.packages and of preflight's probe (listed without the role's name, as every
# include_role is): each carries the tag of the role that includes it.
ROLE_INCLUDES = {
    "Read the installed packages the role branches on": "no_logs",
    NO_LOGS_PURGE: "no_logs",
    BASE_INSTALL: "base",
    "Purge the unwanted packages": "base",
    "Probe the kernel where norex.vpn.preflight has not": "wireguard",
    "Install nftables": "firewall",
    "Install the WireGuard tools": "wireguard",
    "Install conntrack and openssl": "agent",
    "Install Unbound and the root data": "resolver",
}


def test_every_converge_task_carries_its_roles_tag(tmp_path: Path) -> None:
    """A task added without tags would be skipped by every --tags run; the input play is all `always`."""
    result = _list_tasks(tmp_path, "--list-tasks")
    assert result.returncode == 0, result.stdout + result.stderr
    untagged = []
    for line in result.stdout.splitlines():
        match = re.match(r"\s+(?:norex\.vpn\.(\w+) : )?(.+)\tTAGS: \[(.*)\]$", line)
        if not match or match.group(2).startswith("play #"):
            continue
        role, name, tags = match.group(1), match.group(2), {t.strip() for t in match.group(3).split(",")} - {""}
        if role == "packages":
            wanted = tags  # it runs with the tags of the role that imports it: any will do
        elif role == "preflight" and name in WIREGUARD_PROBE:
            wanted = {"always", "wireguard"}  # preflight's own, or the wireguard role's import of it
        elif role is None and name in ROLE_INCLUDES:
            wanted = {ROLE_INCLUDES[name]}
        elif role in (None, "preflight"):
            wanted = {"always"}  # the input play and preflight
        else:
            wanted = {"always", role}
        if not tags & wanted:
            untagged.append(f"{role} : {name} {sorted(tags)}")
    assert untagged == [], untagged
