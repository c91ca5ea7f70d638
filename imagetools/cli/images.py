"""``pyrun image ls|inspect|tag|rm|gc|load|save``: the store's images.

- ``ls [--format table|json] [-q] [--digests]``: docker's columns (REPOSITORY TAG IMAGE ID
  CREATED SIZE; IMAGE ID is the config digest, SIZE what the image's blobs take in the store),
  newest first; ``-q`` the unique image ids; json: a list of objects.
- ``inspect [--raw] [--config] REF``: skopeo inspect's JSON (imagetools.images).
- ``tag SRC DEST``; ``rm [-f] [--prune] REF...`` (names go, blobs at the next gc or now with
  --prune); ``gc [--dry-run]``.
- ``load [-i FILE|DIR|-] [--name NAME]``, ``save [-o FILE|DIR|-] [--format F] REF...``
  (imagetools.archive): stdin and stdout when not a terminal, as docker does.

Everything but click is imported when a command runs.
"""

from __future__ import annotations

import functools
import sys
from datetime import UTC

import click

from imagetools.cli import ImageContext, command, image

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from typing import Any


def _os_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """An OSError nothing mapped (disk full, permission) is one clear error line too."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OSError as err:
            from imagetools.errors import ImageError

            where = f": {err.filename}" if err.filename else ""
            raise ImageError(f"{(err.strerror or str(err)).lower()}{where}") from None

    return wrapper


# -- ls -----------------------------------------------------------------------------------------
@image.command("ls", help="List the images in the store.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option("-q", "--quiet", is_flag=True, help="only the image ids (each once)")
@click.option("--digests", is_flag=True, help="show the manifest digests")
@click.pass_obj
@command
@_os_errors
def ls_command(context: ImageContext, fmt: str, quiet: bool, digests: bool) -> None:
    from imagetools.images import go_json, list_images

    rows = list_images(context.store())
    if quiet:
        seen: list[str] = []
        for row in rows:
            short = _short(row["ID"] or row["Digest"])
            if short not in seen:
                seen.append(short)
        click.echo("".join(f"{s}\n" for s in seen), nl=False)
        return
    if fmt == "json":
        for row in rows:
            row["CreatedSince"] = _since(row["Created"])
        click.echo(go_json(rows))
        return
    header = ["REPOSITORY", "TAG", *(["DIGEST"] if digests else []), "IMAGE ID", "CREATED"]
    table = [[*header, "SIZE"]]
    for row in rows:
        cells = [row["Repository"], row["Tag"]]
        if digests:
            cells.append(row["Digest"])
        cells += [_short(row["ID"]) or "<missing>", _since(row["Created"]), _size(row["Size"])]
        table.append(cells)
    click.echo(_tabulate(table), nl=False)


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12]


def _tabulate(rows: list[list[str]]) -> str:
    """Columns as docker's tabwriter sets them (min width 10, padding 3)."""
    widths = [max(10, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        line = "".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        lines.append(line + row[-1] + "\n")
    return "".join(lines)


def _parse_time(text: str) -> datetime | None:
    import re
    from datetime import datetime

    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if not match:
        return None
    base, fraction, zone = match.groups()
    micro = (fraction or "0")[:6].ljust(6, "0")
    try:
        return datetime.fromisoformat(f"{base}.{micro}{'+00:00' if zone == 'Z' else zone}")
    except ValueError:
        return None


def _since(created: str) -> str:
    """docker's units.HumanDuration + " ago"."""
    from datetime import datetime

    when = _parse_time(created)
    if when is None:
        return "N/A"
    seconds = (datetime.now(UTC) - when).total_seconds()
    if seconds < 1:
        text = "Less than a second"
    elif int(seconds) == 1:
        text = "1 second"
    elif seconds < 60:
        text = f"{int(seconds)} seconds"
    elif int(seconds / 60) == 1:
        text = "About a minute"
    elif seconds < 3600:
        text = f"{int(seconds / 60)} minutes"
    else:
        hours = round(seconds / 3600)
        if hours == 1:
            text = "About an hour"
        elif hours < 48:
            text = f"{hours} hours"
        elif hours < 24 * 7 * 2:
            text = f"{hours // 24} days"
        elif hours < 24 * 30 * 2:
            text = f"{hours // 24 // 7} weeks"
        elif hours < 24 * 365 * 2:
            text = f"{hours // 24 // 30} months"
        else:
            text = f"{int(seconds / 3600) // 24 // 365} years"
    return f"{text} ago"


def _size(size: float) -> str:
    """docker's units.HumanSizeWithPrecision(size, 3): decimal units."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    index = 0
    while size >= 1000 and index < len(units) - 1:
        size /= 1000
        index += 1
    return f"{size:.3g}{units[index]}"


# -- inspect ------------------------------------------------------------------------------------
@image.command("inspect", help="Show an image as skopeo inspect does.")
@click.option("--format", "fmt", type=click.Choice(["json"]), default="json", show_default=True)
@click.option("--raw", is_flag=True, help="the manifest (or index) as stored")
@click.option("--config", "show_config", is_flag=True, help="the image config (raw with --raw)")
@click.argument("ref")
@click.pass_obj
@command
@_os_errors
def inspect_command(
    context: ImageContext, ref: str, fmt: str, raw: bool, show_config: bool
) -> None:
    from imagetools import images

    store = context.store()
    if raw:
        data = images.raw_config(store, ref) if show_config else images.raw_manifest(store, ref)
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    if show_config:
        _, manifest = images.platform_manifest(store, images.find(store, ref).descriptor)
        config = store.read_json(manifest.config.digest)
        click.echo(images.go_json(images.oci_config(config)))
        return
    click.echo(images.go_json(images.inspect(store, ref)))


# -- tag, rm, gc --------------------------------------------------------------------------------
@image.command("tag", help="Give an image another name.")
@click.argument("source")
@click.argument("target")
@click.pass_obj
@command
@_os_errors
def tag_command(context: ImageContext, source: str, target: str) -> None:
    from imagetools.images import tag

    tag(context.store(), source, target)


@image.command("rm", help="Remove image names (blobs go at the next gc, or now with --prune).")
@click.option("-f", "--force", is_flag=True, help="also an id with several names, or in use")
@click.option("--prune", is_flag=True, help="run gc afterwards")
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
@command
@_os_errors
def rm_command(context: ImageContext, refs: tuple[str, ...], force: bool, prune: bool) -> None:
    from imagetools.images import remove
    from runtime.cli.edge import _report
    from runtime.errors import PyrunError

    store = context.store()
    failed = 0
    for ref in refs:
        try:
            removal = remove(store, ref, force=force)
            for name in removal.names:
                click.echo(f"Untagged: {name}")
            for chain in removal.snapshots:
                click.echo(f"Deleted: layer snapshot {chain}")
        except PyrunError as err:
            _report(err.message)
            failed = err.exit_code
    if prune:
        _gc(store, dry_run=False)
    if failed:
        raise click.exceptions.Exit(failed)


@image.command("gc", help="Remove blobs no image uses, abandoned downloads, unused snapshots.")
@click.option("--dry-run", is_flag=True, help="only say what would go")
@click.pass_obj
@command
@_os_errors
def gc_command(context: ImageContext, dry_run: bool) -> None:
    _gc(context.store(), dry_run)


def _gc(store: Any, dry_run: bool) -> None:
    import os

    from imagetools.images import gc

    sizes = {}
    for item in store.gc(dry_run=True):  # blob digests and ingest/<partial download>
        path = f"{store.root}/{item}" if item.startswith("ingest/") else store.blob_path(item)
        try:
            sizes[item] = os.stat(path).st_size
        except (OSError, ValueError):
            pass
    removed, snapshots = gc(store, dry_run=dry_run)
    verb = "Would delete" if dry_run else "Deleted"
    for item in removed:
        click.echo(f"{verb}: {item}")
    for item in snapshots if isinstance(snapshots, (list, tuple)) else []:
        click.echo(f"{verb}: {item}")  # the snapshotters' words: "layer <chain id>" ...
    total = sum(sizes.get(d, 0) for d in removed)
    blobs = sum(1 for d in removed if not d.startswith("ingest/"))
    what = "would be reclaimed" if dry_run else "reclaimed"
    click.echo(f"{blobs} blobs, {_size(total)} {what}", err=True)


# -- load, save ---------------------------------------------------------------------------------
@image.command(
    "load",
    help="Load images from an OCI layout (directory or tar) or a docker-archive. Names come"
    " from the archive (io.containerd.image.name, a full ref.name, RepoTags); a bare tag T"
    " becomes NAME:T with --name NAME, else localhost/<file or dir name>:T. --name with a"
    " tag names the archive's only image exactly.",
)
@click.option("-i", "--input", "source", default="-", help="FILE, DIR, or - for stdin")
@click.option("--name", default=None, help="REPOSITORY[:TAG] for the loaded image(s)")
@click.option("-q", "--quiet", is_flag=True, help="print nothing")
@click.pass_obj
@command
@_os_errors
def load_command(context: ImageContext, source: str, name: str | None, quiet: bool) -> None:
    from imagetools.archive import load
    from imagetools.errors import ImageError

    if source == "-":
        if sys.stdin.isatty():
            raise ImageError("requested load from stdin, but stdin is a terminal: use -i FILE")
        loaded = load(context.store(), sys.stdin.buffer, name=name)
    else:
        loaded = load(context.store(), source, name=name)
    if not quiet:
        for ref, _ in loaded:
            click.echo(f"Loaded image: {ref}")


@image.command("save", help="Save images to an oci-archive, a docker-archive or an oci-dir.")
@click.option("-o", "--output", "target", default="-", help="FILE, DIR (oci-dir), - for stdout")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["oci-archive", "docker-archive", "oci-dir"]),
    default="oci-archive",
    show_default=True,
)
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
@command
@_os_errors
def save_command(context: ImageContext, target: str, fmt: str, refs: tuple[str, ...]) -> None:
    from imagetools.archive import save
    from imagetools.errors import ImageError

    if target == "-":
        if fmt == "oci-dir":
            raise ImageError("--format oci-dir needs -o DIR")
        if sys.stdout.isatty():
            raise ImageError("cowardly refusing to save to a terminal: use -o or redirect")
        save(context.store(), list(refs), sys.stdout.buffer, format=fmt)
        sys.stdout.buffer.flush()
        return
    save(context.store(), list(refs), target, format=fmt)
