"""``pyrun image snapshots [ls|rm]`` and ``pyrun image commit``.

- ``snapshots [ls] [--format table|json] [--no-size]``: layer snapshots (id = chain id, the
  names whose images use them) and bundle snapshots (id, overlay|vfs, image, bundle), with the
  bytes each holds of its own (a layer's files, an overlay's upper dir, a vfs rootfs).
- ``snapshots rm ID...``: unmount and remove bundle snapshots (the container's changes go).
- ``commit [-m MSG] [-a AUTHOR] [-c 'CMD ["x"]']... BUNDLE REF``: the bundle's changes as a new
  image; its manifest digest on stdout.
"""

from __future__ import annotations

import click

from imagetools.cli import ImageContext, command, image


@image.group(
    "snapshots",
    invoke_without_command=True,
    help="List layer and bundle snapshots (rm: remove bundle snapshots).",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--no-size", is_flag=True, help="do not add up sizes (faster)")
@click.pass_context
def snapshots_group(context: click.Context, fmt: str, no_size: bool) -> None:
    if context.invoked_subcommand is None:
        context.invoke(ls_command, fmt=fmt, no_size=no_size)


@snapshots_group.command("ls", help="List layer and bundle snapshots.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--no-size", is_flag=True, help="do not add up sizes (faster)")
@click.pass_obj
@command
def ls_command(context: ImageContext, fmt: str, no_size: bool) -> None:
    from imagetools.snapshots import listing

    rows = listing(context.store(), sizes=not no_size)
    if fmt == "json":
        import json

        click.echo(json.dumps(rows, indent=2))
        return
    table: list[list[str]] = [["ID", "KIND", "IMAGE", "BUNDLE", "SIZE"]]
    for row in rows:
        shown = row["id"].partition(":")[2][:12] if row["kind"] == "layer" else row["id"]
        size = "-" if row["size"] is None else _human(row["size"])
        if not row["live"] and row["kind"] != "layer":
            size += " (stale)"
        table.append([shown, row["kind"], row["image"] or "<none>", row["bundle"] or "-", size])
    widths = [max(len(r[i]) for r in table) + 3 for i in range(len(table[0]) - 1)]
    for cells in table:
        click.echo("".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + cells[-1])


def _human(size: float) -> str:
    """docker's units.HumanSize (decimal units, 3 significant digits)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.3g}{unit}"
        size /= 1000
    return f"{size:.3g}TB"


@snapshots_group.command("rm", help="Unmount and remove bundle snapshots.")
@click.argument("ids", nargs=-1, required=True)
@click.pass_obj
@command
def rm_command(context: ImageContext, ids: tuple[str, ...]) -> None:
    from imagetools.snapshots import remove

    store = context.store()
    for snapshot_id in ids:
        meta = remove(store, snapshot_id)
        click.echo(f"Deleted: {snapshot_id} ({meta['bundle']})")


@image.command("commit", help="Make a new image from a bundle's changes.")
@click.option("-m", "--message", default="", help="commit message (the history's comment)")
@click.option("-a", "--author", default="", help='author, e.g. "Name <mail>"')
@click.option(
    "-c",
    "--change",
    "changes",
    multiple=True,
    help="Dockerfile instruction: CMD ENTRYPOINT ENV WORKDIR USER LABEL EXPOSE VOLUME",
)
@click.argument("bundle", type=click.Path(file_okay=False))
@click.argument("ref")
@click.pass_obj
@command
def commit_command(
    context: ImageContext,
    bundle: str,
    ref: str,
    message: str,
    author: str,
    changes: tuple[str, ...],
) -> None:
    from imagetools.commit import commit

    descriptor = commit(
        context.store(), bundle, ref, message=message, author=author, changes=list(changes)
    )
    click.echo(descriptor["digest"])
