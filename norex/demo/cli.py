"""`norex demo`: the main job, the whole story on this machine."""

from __future__ import annotations

import click


@click.command()
@click.option("--timeout", default=600, show_default=True, type=click.IntRange(60, 3600), help="Seconds per step.")
@click.option(
    "--image",
    type=click.Choice(["prepared", "stock"]),
    default="prepared",
    show_default=True,
    help="The customer server's lab image: prepared (production's prepared snapshot; built once, before the "
    "clock starts) or stock (a provider's Debian 12: the first converge installs every package and update).",
)
def demo(timeout: int, image: str) -> None:
    """The whole story on this machine: subscribe, get a server, connect a device, cancel, erase."""
    from norex.demo.story import demo as run_demo

    run_demo(timeout=timeout, image=image)
