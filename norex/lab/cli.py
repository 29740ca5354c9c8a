"""`norex lab ...`: the local stand-in for a dedicated cloud server per customer."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from norex.errors import UsageError
from norex.lab import host_tools, network, phones, prepared, servers
from norex.lab.state import ServerRecord, all_devices, all_servers, locked


def _require() -> None:
    host_tools.require()


def _say(msg: str) -> None:
    click.echo(msg, err=True)


def _server_json(r: ServerRecord) -> dict:
    from norex.lab.state import ssh_key

    return {
        "name": r.name,
        "address": r.address,
        "address6": r.address6,
        "ssh_port": r.ssh_port,
        "ssh_user": r.ssh_user,
        "ssh_key": str(ssh_key()),
        "state": servers.status(r),
    }


@click.group()
def lab() -> None:
    """Lab servers: Debian 12 under systemd-nspawn, each in its own network namespace."""


@lab.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the server as JSON.")
@click.option(
    "--image",
    type=click.Choice(prepared.IMAGES),
    default="stock",
    show_default=True,
    help="stock: a provider's Debian 12; prepared: the lab's counterpart of the prepared snapshot (packages "
    "installed and up to date, journal volatile; built on first use).",
)
def up(name: str, as_json: bool, image: str) -> None:
    """Create and boot a server; return when it answers over SSH."""
    _require()
    record = servers.up(name, progress=_say, image=prepared.image_folder(image, progress=_say))
    data = _server_json(record)
    if as_json:
        click.echo(json.dumps({k: data[k] for k in ("name", "address", "ssh_port", "ssh_user", "ssh_key")}))
    else:
        click.echo(f"{record.name} is up at {record.address} ({record.address6}); `norex lab ssh {record.name}`")


@lab.command()
@click.argument("name")
def down(name: str) -> None:
    """Destroy a server and every trace of it."""
    _require()
    servers.down(name)


@lab.command()
@click.argument("name")
def stop(name: str) -> None:
    """Power a server off; its disk is kept."""
    _require()
    servers.stop(name)


@lab.command()
@click.argument("name")
def start(name: str) -> None:
    """Boot a stopped server."""
    _require()
    servers.start(name)


@lab.command()
@click.argument("name")
def restart(name: str) -> None:
    """Power-cycle a server."""
    _require()
    servers.restart(name)


@lab.command()
@click.argument("name")
def disk(name: str) -> None:
    """Print the folder holding everything the server has written (its writable layer)."""
    click.echo(str(servers.disk(name)))


@lab.command(name="list")
@click.option("--json", "as_json", is_flag=True)
def list_(as_json: bool) -> None:
    """List lab servers."""
    rows = [_server_json(r) for r in all_servers()]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        click.echo(f"{row['name']:<20} {row['state']:<10} {row['address']:<15} {row['address6']}")


@lab.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(name: str, command: tuple[str, ...]) -> None:
    """Open a shell on a server, or run COMMAND there."""
    record = servers.get(name)
    command = command[1:] if command[:1] == ("--",) else command
    if not servers.is_running(name):
        raise UsageError(f"lab server {name!r} is stopped (`norex lab start {name}`)")
    argv = servers.ssh_command(record, list(command), tty=not command and sys.stdin.isatty())
    sys.stdout.flush()
    os.execvp(argv[0], argv)


@lab.command()
def inventory() -> None:
    """Print an Ansible YAML inventory of every lab server (group vpn_servers)."""
    from norex.lab.inventory import render

    click.echo(render(), nl=False)


@lab.command(name="dns-queries")
@click.argument("zone")
@click.option("--json", "as_json", is_flag=True, help="Print a list of {time, source, name, type}.")
def dns_queries(zone: str, as_json: bool) -> None:
    """Print what the lab's DNS server for ZONE (root, test, example.test) was asked.

    The lab's outside observer (dnstap on its NSD servers): what a customer's resolver revealed.
    """
    from norex.lab import observer

    found = observer.queries(zone)
    if as_json:
        click.echo(json.dumps([{"time": q.time, "source": q.source, "name": q.name, "type": q.qtype} for q in found]))
        return
    for q in found:
        click.echo(f"{q.time} {q.source} {q.name} {q.qtype}")


@lab.command(name="doctor")
@click.option("--json", "as_json", is_flag=True)
def doctor_(as_json: bool) -> None:
    """Check that this host can run the lab; print what to install if not."""
    checks = host_tools.run_checks()
    fix = host_tools.install_command(checks)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": all(c.ok for c in checks),
                    "install": fix,
                    "checks": [{"name": c.name, "ok": c.ok} for c in checks],
                }
            )
        )
    else:
        for c in checks:
            click.echo(f"{'ok ' if c.ok else 'MISSING'}  {c.name}" + ("" if c.ok or not c.detail else f": {c.detail}"))
        if fix:
            click.echo(f"\nto fix: {fix}")
    if not all(c.ok for c in checks):
        sys.exit(1)


@lab.command()
def teardown() -> None:
    """Remove every server and device, then the lab network itself (the base image cache stays)."""
    _require()
    for d in all_devices():
        phones.down(d.name)
    for r in all_servers():
        servers.down(r.name)
    with locked():
        network.teardown_network()


@lab.group()
def device() -> None:
    """Lab devices: client namespaces on the lab internet, optionally with a WireGuard tunnel."""


@device.command(name="up")
@click.argument("name")
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A WireGuard client config (wg-quick format) to bring up on the device.",
)
@click.option("--json", "as_json", is_flag=True)
def device_up(name: str, config: Path | None, as_json: bool) -> None:
    """Create a device on the lab internet, with the given tunnel if any."""
    _require()
    text = None
    if config is not None:
        try:
            text = config.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {config}: {getattr(exc, 'strerror', None) or exc}") from None
    d = phones.up(name, text)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "name": d.name,
                    "address": d.address,
                    "address6": d.address6,
                    "netns": d.netns,
                    "wg_interface": d.wg_interface,
                }
            )
        )
    else:
        click.echo(
            f"device {d.name} is up at {d.address}" + (f" with tunnel {d.wg_interface}" if d.wg_interface else "")
        )


@device.command(name="exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def device_exec(name: str, command: tuple[str, ...]) -> None:
    """Run COMMAND on the device (dig, curl, ping...); exits with its status."""
    _require()
    command = command[1:] if command[:1] == ("--",) else command
    argv = phones.exec_argv(name, list(command))
    sys.stdout.flush()
    os.execvp(argv[0], argv)


@device.command(name="down")
@click.argument("name")
def device_down(name: str) -> None:
    """Remove a device."""
    _require()
    phones.down(name)


@device.command(name="list")
@click.option("--json", "as_json", is_flag=True)
def device_list(as_json: bool) -> None:
    """List lab devices."""
    rows = [
        {"name": d.name, "address": d.address, "address6": d.address6, "wg_interface": d.wg_interface}
        for d in all_devices()
    ]
    if as_json:
        click.echo(json.dumps(rows))
    else:
        for row in rows:
            click.echo(f"{row['name']:<20} {row['address']:<15} {row['wg_interface'] or '-'}")
