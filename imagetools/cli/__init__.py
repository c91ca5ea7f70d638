"""``pyrun image ...``: the click group; each topic module adds its commands to it.

Commands raise PyrunError like the runtime's verbs; ``command`` turns them into pyrun's one
error line and exit code (the CLI edge's rule 4), so no command prints errors itself.
"""

from __future__ import annotations

import functools
import importlib

import click

from runtime.errors import PyrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# Topic modules (imagetools/cli/<name>.py) that define commands, imported when the group is.
TOPICS = ("registry", "images", "unpack", "snapshots", "search")


class ImageContext:
    """What every image command shares: the store's root and the TLS default."""

    def __init__(self, root: str, tls_verify: bool | None = None) -> None:
        self.root = root
        self.tls_verify = tls_verify

    def store(self) -> Any:
        from imagetools.store import Store

        return Store(self.root)


@click.group("image", help="Images: pull, push, store, unpack into bundles, snapshots, commit.")
@click.option(
    "--root",
    "root",
    default=None,
    help="image store (default: /var/lib/pyrun/images; ~/.local/share/pyrun/images for users)",
)
@click.pass_context
def image(context: click.Context, root: str | None) -> None:
    from imagetools.paths import default_root

    context.obj = ImageContext(root or default_root())


def command(func: Callable[..., Any]) -> Callable[..., Any]:
    """Errors of an image command become pyrun's error line and exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PyrunError as err:
            from runtime.cli.edge import _report

            _report(err.message)
            raise click.exceptions.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            from runtime.cli.edge import _report

            _report("interrupted")
            raise click.exceptions.Exit(130) from None

    return wrapper


def load_topics() -> click.Group:
    for topic in TOPICS:
        try:
            importlib.import_module(f"imagetools.cli.{topic}")
        except ModuleNotFoundError as err:
            if err.name != f"imagetools.cli.{topic}":
                raise
    return image
