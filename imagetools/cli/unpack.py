"""``pyrun image unpack [--platform] [--snapshotter vfs|overlay] [--force] [--rootless] REF
BUNDLE``: a stored image becomes a bundle (rootfs/ and config.json) that ``pyrun run`` runs.

Warnings (a device node that became a placeholder, an xattr that could not be set) go to
stderr; the bundle's path goes to stdout.
"""

from __future__ import annotations

import sys

import click

from imagetools.cli import ImageContext, command, image


def _warn(message: str) -> None:
    sys.stderr.write(f"pyrun: warning: {message}\n")


@image.command("unpack", help="Unpack a stored image into a bundle (rootfs and config.json).")
@click.option("--platform", default=None, help="os/arch[/variant] of an index (default: this host)")
@click.option(
    "--snapshotter",
    type=click.Choice(["vfs", "overlay"]),
    default=None,
    help="overlay: shared layer snapshots and an overlay mount (the default where the kernel"
    " allows it); vfs: a full copy of the layers",
)
@click.option("--force", is_flag=True, help="replace an existing config.json and rootfs")
@click.option(
    "--rootless/--no-rootless",
    default=None,
    help="no chown, devices become placeholder files (default: when not root)",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="most uncompressed bytes one layer may hold (default 16 GiB)",
)
@click.argument("ref")
@click.argument("bundle", type=click.Path(file_okay=False))
@click.pass_obj
@command
def unpack_command(
    context: ImageContext,
    ref: str,
    bundle: str,
    platform: str | None,
    snapshotter: str | None,
    force: bool,
    rootless: bool | None,
    limit: int | None,
) -> None:
    from imagetools.layer import DEFAULT_LIMIT
    from imagetools.unpack import unpack

    store = context.store()
    if snapshotter is None:
        from imagetools.snapshots import default_snapshotter

        snapshotter = "vfs" if rootless else default_snapshotter(store)
    path = unpack(
        store,
        ref,
        bundle,
        platform=platform,
        snapshotter=snapshotter,
        rootless=rootless,
        force=force,
        limit=limit or DEFAULT_LIMIT,
        warn=_warn,
    )
    click.echo(str(path))
