"""Lab servers: Debian 12 booted with systemd under systemd-nspawn, one network namespace each.

Each server is an overlayfs clone of the base image (its writable layer is its disk), booted by a
small supervisor process (norex.lab.supervisor) that restarts systemd-nspawn when the server reboots
itself, as a real machine comes back after `systemctl reboot`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from norex.errors import AlreadyExists, NotFound, UsageError
from norex.lab import plan
from norex.lab.image import ensure_base_image
from norex.lab.network import ensure_network, forget_neighbours
from norex.lab.processes import kill, pid_alive, pids_in_namespace, pids_mentioning, read_pid, wait_gone
from norex.lab.state import (
    ServerRecord,
    all_servers,
    free_index,
    known_hosts,
    load_server,
    locked,
    servers_dir,
    ssh_key,
    validate_name,
)
from norex.lab.system import LabError, is_mounted, run, spawn_detached, unmount
from norex.net import port_open

BOOT_TIMEOUT = 120.0
SUPERVISOR_MARKER = "norex.lab.supervisor"

Progress = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


# ---- paths of one server -------------------------------------------------------------------------


def paths(name: str) -> dict[str, Path]:
    d = servers_dir() / name
    return {
        "dir": d,
        "upper": d / "upper",
        "work": d / "work",
        "rootfs": d / "rootfs",
        "console": d / "console.log",
        "supervisor": d / "supervisor.pid",
        "init": d / "init.pidns",
        "lower": d / "lower",
    }


# ---- lifecycle -----------------------------------------------------------------------------------


def up(name: str, progress: Progress = _quiet, image: Path | None = None) -> ServerRecord:
    """A fresh server from the stock base image, or from the image folder given (norex.lab.prepared.image_folder)."""
    validate_name(name)
    with locked():
        if (servers_dir() / name).exists():
            raise AlreadyExists(f"lab server {name!r} already exists (remove it with `norex lab down {name}`)")
        base = image or ensure_base_image(progress)
        ensure_network()
        index = free_index({r.index for r in all_servers()})
        address, address6 = plan.server_addresses(index)
        record = ServerRecord(name=name, index=index, address=address, address6=address6)
        record.save()
        paths(name)["lower"].write_text(str(base) + "\n")
    try:
        mount(name)
        _personalise(record)
        write_known_hosts()
        _boot(record)
        wait_ready(record)
    except BaseException:
        _destroy(name)
        raise
    record.state = "created"
    record.save()
    return record


def down(name: str) -> None:
    validate_name(name)
    if not (servers_dir() / name).exists():
        raise NotFound(f"no lab server named {name!r} (see `norex lab list`)")
    _destroy(name)


def start(name: str) -> ServerRecord:
    record = get(name)
    if not is_running(name):
        kill_container(name)  # leftovers of a supervisor that was killed
        ensure_network()
        _boot(record)
    wait_ready(record)
    return record


def stop(name: str, timeout: float = 60) -> None:
    get(name)
    _power_off(name, timeout)


def restart(name: str) -> ServerRecord:
    stop(name)
    return start(name)


def get(name: str) -> ServerRecord:
    validate_name(name)
    record = load_server(name)
    if record is None:
        if (servers_dir() / name).exists():
            raise UsageError(
                f"lab server {name!r} is half-made (an interrupted `up`): remove it with `norex lab down {name}`"
            )
        raise NotFound(f"no lab server named {name!r} (see `norex lab list`)")
    return record


def disk(name: str) -> Path:
    get(name)
    return paths(name)["upper"]


def is_running(name: str) -> bool:
    return pid_alive(read_pid(paths(name)["supervisor"]), SUPERVISOR_MARKER)


def status(record: ServerRecord) -> str:
    if record.state == "creating" and not is_running(record.name):
        return "incomplete"
    return "running" if is_running(record.name) else "stopped"


def mount(name: str) -> None:
    """The server's root: its overlay of the base image and its own writable layer."""
    p = paths(name)
    lower = Path(p["lower"].read_text().strip())
    if not lower.is_dir():
        raise LabError(f"the base image {lower} of lab server {name!r} is gone; recreate the server")
    for key in ("upper", "work", "rootfs"):
        p[key].mkdir(parents=True, exist_ok=True)
    if not is_mounted(p["rootfs"]):
        run(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={lower},upperdir={p['upper']},workdir={p['work']}",
                str(p["rootfs"]),
            ]
        )


def _personalise(record: ServerRecord) -> None:
    """What a provider writes into a fresh server: hostname, network, machine id, host keys, our key."""
    root = paths(record.name)["rootfs"]
    (root / "etc/hostname").write_text(record.name + "\n")
    (root / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{record.name}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    )
    (root / "etc/machine-id").write_text(os.urandom(16).hex() + "\n")
    net = root / "etc/systemd/network"
    net.mkdir(parents=True, exist_ok=True)
    # Sorts before the image's 80-container-host0.network, which would ask for DHCP.
    (net / "10-host0.network").write_text(
        "[Match]\nName=host0\n\n[Network]\n"
        f"Address={record.address}/{plan.PREFIX4}\nAddress={record.address6}/{plan.PREFIX6}\n"
        f"Gateway={plan.ROUTER4}\nGateway={plan.ROUTER6}\n"
        "IPv6AcceptRA=no\nLinkLocalAddressing=ipv6\n"
    )
    dot_ssh = root / "root/.ssh"
    dot_ssh.mkdir(mode=0o700, exist_ok=True)
    auth = dot_ssh / "authorized_keys"
    auth.write_text(ssh_key().with_suffix(".pub").read_text())
    auth.chmod(0o600)
    procs = []
    for kind, bits in (("ed25519", None), ("ecdsa", "256"), ("rsa", "3072")):
        key = root / f"etc/ssh/ssh_host_{kind}_key"
        key.unlink(missing_ok=True)
        key.with_suffix(".pub").unlink(missing_ok=True)
        cmd = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"root@{record.name}", "-f", str(key)]
        procs.append(
            subprocess.Popen([*cmd, *(["-b", bits] if bits else [])], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        )
    for proc in procs:
        if proc.wait() != 0:
            raise LabError("ssh-keygen failed while making the server's host keys")


def _boot(record: ServerRecord) -> None:
    p = paths(record.name)
    mount(record.name)
    forget_neighbours(record.address, record.address6)
    pid = spawn_detached(
        [sys.executable, "-m", SUPERVISOR_MARKER, record.name],
        stdout=p["console"],
        env={**os.environ, "NOREX_LAB_DIR": str(servers_dir().parent)},
    )
    p["supervisor"].write_text(f"{pid}\n")


def nspawn_command(name: str) -> list[str]:
    return [
        "systemd-nspawn",
        "--quiet",
        "--boot",
        f"--directory={paths(name)['rootfs']}",
        f"--machine={name}",
        "--register=no",
        "--keep-unit",
        f"--network-bridge={plan.BRIDGE}",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
        "--console=read-only",
    ]


def wait_ready(record: ServerRecord, timeout: float = BOOT_TIMEOUT) -> None:
    """Ready means `systemctl is-system-running` answers running or degraded over SSH."""
    deadline = time.monotonic() + timeout
    console = paths(record.name)["console"]
    last = "no answer"
    while time.monotonic() < deadline:
        if not is_running(record.name):
            raise LabError(f"lab server {record.name!r} stopped while booting: {_console_tail(console)}")
        if not port_open(record.address, record.ssh_port):
            time.sleep(0.1)
            continue
        left = max(5, int(deadline - time.monotonic()))
        try:
            proc = subprocess.run(
                ssh_command(record, ["systemctl", "is-system-running", "--wait"], connect_timeout=3),
                capture_output=True,
                text=True,
                timeout=left,
                check=False,
            )
        except subprocess.TimeoutExpired:
            break
        answer = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
        last = answer[-1] if answer else f"exit {proc.returncode}"
        if last in ("running", "degraded"):
            return
        if last in ("maintenance", "stopping", "offline"):
            break
        time.sleep(0.3)
    raise LabError(
        f"lab server {record.name!r} not ready within {timeout:.0f} s (systemd says {last!r}; console: {console})"
    )


def _console_tail(console: Path) -> str:
    try:
        lines = [ln.strip() for ln in console.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        lines = []
    return lines[-1] if lines else "no console output"


def _power_off(name: str, timeout: float) -> None:
    """Orderly shutdown through the supervisor; anything left after the timeout is killed."""
    p = paths(name)
    sup = read_pid(p["supervisor"])
    if pid_alive(sup, SUPERVISOR_MARKER):
        kill([sup], signal.SIGTERM)
        if not wait_gone([sup], timeout):
            kill([sup])
    kill_container(name)
    if is_mounted(p["rootfs"]):
        unmount(p["rootfs"])
    p["supervisor"].unlink(missing_ok=True)


def kill_container(name: str) -> None:
    """Kill whatever is left of a server's processes (a crashed or killed supervisor leaves them)."""
    p = paths(name)
    for proc in _nspawn_pids(name):
        kill([proc])
    inode = read_pid(p["init"])
    if inode:
        pids = pids_in_namespace("pid", inode)
        kill(pids)
        wait_gone(pids, 10)
    p["init"].unlink(missing_ok=True)


def _nspawn_pids(name: str) -> list[int]:
    """systemd-nspawn and any helper (e.g. ssh-keygen of an interrupted `up`) working on this server."""
    return pids_mentioning(f"{paths(name)['dir']}/", unless=SUPERVISOR_MARKER)


def _destroy(name: str) -> None:
    """Remove every trace of a server: processes, network namespace (with it the veth), mount, disk."""
    p = paths(name)
    _power_off(name, timeout=15)
    if is_mounted(p["rootfs"]):
        unmount(p["rootfs"])
    shutil.rmtree(p["dir"], ignore_errors=True)
    if p["dir"].exists():
        raise LabError(f"could not remove {p['dir']}")
    write_known_hosts()


# ---- access ----------------------------------------------------------------------------------------


def ssh_command(
    record: ServerRecord, command: list[str] | None = None, connect_timeout: int = 10, tty: bool = False
) -> list[str]:
    return [
        "ssh",
        "-i",
        str(ssh_key()),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts()}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"ConnectTimeout={connect_timeout}",
        "-o",
        "LogLevel=ERROR",
        *(["-t"] if tty else ["-T"]),
        "-p",
        str(record.ssh_port),
        "--",
        f"{record.ssh_user}@{record.address}",
        *(command or []),
    ]


def write_known_hosts() -> None:
    lines = []
    for record in all_servers():
        upper = paths(record.name)["upper"] / "etc/ssh"
        for pub in sorted(upper.glob("ssh_host_*_key.pub")):
            kind, key = pub.read_text().split()[:2]
            lines.append(f"{record.address},{record.address6} {kind} {key}")
    path = known_hosts()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    tmp.replace(path)
