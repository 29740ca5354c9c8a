"""The `norex` command. User mistakes end as one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import sys

import click

from norex.audit.cli import audit
from norex.billing.cli import customers
from norex.blocklist.cli import blocklist
from norex.db.cli import db_group
from norex.demo.cli import demo
from norex.devices.cli import devices
from norex.doctor import doctor
from norex.errors import NorexError
from norex.jobs.cli import reconcile, rollout, worker
from norex.lab.cli import lab
from norex.web.cli import serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="norex")
def cli() -> None:
    """NorexVPN infrastructure: one dedicated, log-free WireGuard server per customer."""


# Each subsystem has its own CLI module; this is only where they meet.
for command in (lab, blocklist, serve, customers, db_group, worker, reconcile, rollout, devices, audit, demo, doctor):
    cli.add_command(command)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except NorexError as exc:
        click.echo(f"norex: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("norex: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        click.echo(f"norex: error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"norex: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("norex: interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        click.echo(f"norex: error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
