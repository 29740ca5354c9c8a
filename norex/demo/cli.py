"""`norex demo`: the main job, the whole story on this machine."""

from __future__ import annotations

import click


@click.command()
@click.option("--timeout", default=600, show_default=True, type=click.IntRange(60, 3600), help="Seconds per step.")
def demo(timeout: int) -> None:
    """The whole story on this machine: subscribe, get a server, connect a device, cancel, erase."""
    from norex.demo.story import demo as run_demo

    run_demo(timeout=timeout)
