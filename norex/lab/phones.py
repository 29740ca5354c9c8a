"""Lab devices: stand-ins for a customer's phone, each a network namespace on the lab internet.

Given a WireGuard client config, a device brings up the tunnel (kernel WireGuard where the host has
it, wireguard-go otherwise) and uses the config's DNS servers, as a phone importing it would.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from norex.errors import AlreadyExists, NotFound
from norex.lab import plan, wgconf
from norex.lab.network import ensure_network, forget_neighbours
from norex.lab.processes import kill, pid_alive, read_pid, wait_gone
from norex.lab.state import (
    DeviceRecord,
    all_devices,
    devices_dir,
    free_index,
    load_device,
    locked,
    validate_name,
)
from norex.lab.system import LabError, delete_netns, link_exists, netns_inode, run, spawn_detached

WG_SOCKETS = Path("/var/run/wireguard")


def _netns(name: str) -> str:
    return f"norexlab-dev-{name}"


def up(name: str, config_text: str | None = None) -> DeviceRecord:
    validate_name(name, "lab device")
    config = wgconf.parse(config_text) if config_text is not None else None
    with locked():
        if (devices_dir() / name).exists():
            raise AlreadyExists(f"lab device {name!r} already exists (remove it with `norex lab device down {name}`)")
        ensure_network()
        index = free_index({d.index for d in all_devices()})
        address, address6 = plan.device_addresses(index)
        record = DeviceRecord(
            name=name, index=index, address=address, address6=address6, netns=_netns(name), veth=f"nxd{index}"
        )
        record.save()
    try:
        _plug(record)
        if config:
            _tunnel(record, config)
        _resolv_conf(record, config.dns if config else [])
    except BaseException:
        _destroy(record)
        raise
    record.state = "up"
    record.save()
    return record


def _plug(d: DeviceRecord) -> None:
    ns = d.netns
    if netns_inode(ns) is not None:
        run(["ip", "netns", "del", ns])
    if link_exists(d.veth):
        run(["ip", "link", "del", d.veth])
    run(["ip", "netns", "add", ns])
    forget_neighbours(d.address, d.address6)
    run(["ip", "link", "add", d.veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "link", "set", d.veth, "master", plan.BRIDGE, "up"])
    run(["ip", "link", "set", "lo", "up"], netns=ns)
    run(["ip", "addr", "add", f"{d.address}/32", "dev", "eth0"], netns=ns)
    run(["ip", "-6", "addr", "add", f"{d.address6}/128", "dev", "eth0", "nodad"], netns=ns)
    run(["ip", "link", "set", "eth0", "up"], netns=ns)
    # Everything goes through the lab internet's router, as a phone's traffic goes through its carrier.
    run(["ip", "route", "add", f"{plan.ROUTER4}/32", "dev", "eth0"], netns=ns)
    run(["ip", "route", "add", "default", "via", plan.ROUTER4], netns=ns)
    run(["ip", "-6", "route", "add", f"{plan.ROUTER6}/128", "dev", "eth0"], netns=ns)
    run(["ip", "-6", "route", "add", "default", "via", plan.ROUTER6], netns=ns)


def _tunnel(d: DeviceRecord, config: wgconf.ClientConfig) -> None:
    iface = f"nxwg{d.index}"
    d.wg_interface = iface
    d.save()
    if run(["ip", "link", "add", iface, "type", "wireguard"], check=False, netns=d.netns).returncode != 0:
        sock = WG_SOCKETS / f"{iface}.sock"
        sock.unlink(missing_ok=True)  # left by a killed run; wireguard-go refuses to start otherwise
        pid = spawn_detached(["wireguard-go", "-f", iface], netns=d.netns, env={**os.environ, "LOG_LEVEL": "silent"})
        (d.dir / "wireguard-go.pid").write_text(f"{pid}\n")
        deadline = time.monotonic() + 10
        while not (sock.exists() and link_exists(iface, netns=d.netns)):
            if time.monotonic() > deadline or not pid_alive(pid):
                raise LabError(f"wireguard-go did not create {iface} for lab device {d.name!r}")
            time.sleep(0.05)
    run(["wg", "setconf", iface, "/dev/stdin"], input=config.wg_setconf(), netns=d.netns)
    for address in config.addresses:
        run(["ip", "addr", "add", address, "dev", iface], netns=d.netns)
    run(["ip", "link", "set", iface, "mtu", str(config.mtu or 1420), "up"], netns=d.netns)
    for peer in config.peers:
        if peer.endpoint:
            host = peer.endpoint[0]
            family, via, bits = ("-6", plan.ROUTER6, 128) if ":" in host else ("-4", plan.ROUTER4, 32)
            run(["ip", family, "route", "replace", f"{host}/{bits}", "via", via], netns=d.netns)
        for net in peer.allowed_ips:
            family = "-6" if ":" in net else "-4"
            target = "default" if net in ("0.0.0.0/0", "::/0") else net
            run(["ip", family, "route", "replace", target, "dev", iface], netns=d.netns)


def _resolv_conf(d: DeviceRecord, servers: list[str]) -> None:
    """`ip netns exec` binds /etc/netns/NS/resolv.conf over /etc/resolv.conf inside the namespace."""
    folder = Path("/etc/netns") / d.netns
    folder.mkdir(parents=True, exist_ok=True)
    body = "".join(f"nameserver {s}\n" for s in servers) or "# lab device: no DNS server configured\n"
    (folder / "resolv.conf").write_text(body)


def exec_argv(name: str, command: list[str]) -> list[str]:
    d = get(name)
    if not command:
        raise LabError("give a command to run on the device, e.g. `norex lab device exec NAME -- dig example.test`")
    if netns_inode(d.netns) is None:
        raise LabError(f"lab device {name!r} has no network namespace any more: `norex lab device down {name}`")
    return ["ip", "netns", "exec", d.netns, *command]


def get(name: str) -> DeviceRecord:
    validate_name(name, "lab device")
    record = load_device(name)
    if record is None:
        raise NotFound(f"no lab device named {name!r}")
    return record


def down(name: str) -> None:
    validate_name(name, "lab device")
    record = load_device(name)
    if record is None:
        if (devices_dir() / name).exists():
            shutil.rmtree(devices_dir() / name)
            return
        raise NotFound(f"no lab device named {name!r}")
    _destroy(record)


def _destroy(d: DeviceRecord) -> None:
    pid = read_pid(d.dir / "wireguard-go.pid")
    if pid and pid_alive(pid, "wireguard-go"):
        kill([pid])
        wait_gone([pid], 5)
    delete_netns(d.netns)
    if link_exists(d.veth):
        run(["ip", "link", "del", d.veth], check=False)
    if d.wg_interface:
        (WG_SOCKETS / f"{d.wg_interface}.sock").unlink(missing_ok=True)
    shutil.rmtree(Path("/etc/netns") / d.netns, ignore_errors=True)
    shutil.rmtree(d.dir, ignore_errors=True)
