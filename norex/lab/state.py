"""Where the lab keeps things on the host, and the small JSON records of each server and device."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from norex.errors import UsageError

NAME_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?$")


def validate_name(name: str, what: str = "lab server") -> str:
    if not NAME_RE.match(name or ""):
        raise UsageError(
            f"invalid {what} name {name!r}: use 1-32 lower-case letters, digits and '-', "
            "starting with a letter and not ending with '-'"
        )
    return name


def lab_dir() -> Path:
    return Path(os.environ.get("NOREX_LAB_DIR", "/var/lib/norex/lab"))


def cache_dir() -> Path:
    return Path(os.environ.get("NOREX_LAB_CACHE", "/var/cache/norex/lab"))


def servers_dir() -> Path:
    return lab_dir() / "servers"


def devices_dir() -> Path:
    return lab_dir() / "devices"


def run_dir() -> Path:
    return lab_dir() / "run"


def ssh_key() -> Path:
    return lab_dir() / "ssh" / "id_ed25519"


def known_hosts() -> Path:
    return lab_dir() / "ssh" / "known_hosts"


@contextlib.contextmanager
def locked(name: str = ".lock") -> Iterator[None]:
    """Serialise every change to the lab (allocation, network set-up) across concurrent CLI calls; another name
    is another lock (the prepared image's build, which makes a lab server, holds its own)."""
    lab_dir().mkdir(parents=True, exist_ok=True)
    with open(lab_dir() / name, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class ServerRecord:
    name: str
    index: int
    address: str
    address6: str
    ssh_port: int = 22
    ssh_user: str = "root"
    state: str = "creating"  # creating -> created; running/stopped is read live from processes

    @property
    def dir(self) -> Path:
        return servers_dir() / self.name

    def save(self) -> None:
        _write_json(self.dir / "server.json", asdict(self))


@dataclass
class DeviceRecord:
    name: str
    index: int
    address: str
    address6: str
    netns: str
    veth: str
    wg_interface: str | None = None
    state: str = "creating"

    @property
    def dir(self) -> Path:
        return devices_dir() / self.name

    def save(self) -> None:
        _write_json(self.dir / "device.json", asdict(self))


def load_server(name: str) -> ServerRecord | None:
    data = _read_json(servers_dir() / name / "server.json")
    return ServerRecord(**data) if data else None


def load_device(name: str) -> DeviceRecord | None:
    data = _read_json(devices_dir() / name / "device.json")
    return DeviceRecord(**data) if data else None


def all_servers() -> list[ServerRecord]:
    return [r for n in _names(servers_dir()) if (r := load_server(n))]


def all_devices() -> list[DeviceRecord]:
    return [r for n in _names(devices_dir()) if (r := load_device(n))]


def free_index(used: set[int], limit: int = 254) -> int:
    for i in range(1, limit + 1):
        if i not in used:
            return i
    raise UsageError(f"the lab is full ({limit} in use): remove some with `norex lab down`")


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
