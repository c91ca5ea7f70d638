"""The ``registryd`` command line: ``serve``, ``gc`` and ``htpasswd`` (click).

Errors are PyrunErrors turned into one ``registryd: <message>`` report and the error's exit
code here, and nowhere else (the house rule of runtime/cli/edge.py).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from registryd.auth.cli import htpasswd
from runtime.errors import PyrunError


@click.group(help="registryd: an OCI distribution-spec v1.1 registry.")
def cli() -> None:
    pass


@cli.command(help="Serve the registry (flags override the config file).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file")
@click.option("--listen", help="host:port to listen on (default 127.0.0.1:5000; :0 picks one)")
@click.option("--root", help="storage root (default /var/lib/registryd)")
@click.option(
    "--proxy",
    metavar="URL",
    help="be a pull-through cache of this registry (proxy.remoteurl), e.g. https://registry-1.docker.io",
)
def serve(config_path: str | None, listen: str | None, root: str | None, proxy: str | None) -> None:
    from registryd.config import load_config
    from registryd.serve import run

    config = load_config(config_path, listen=listen, root=root, proxy=proxy)
    sys.exit(run(config))


@cli.command(help="Remove blobs no manifest references (safe while the server runs).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file")
@click.option("--root", help="storage root (overrides the config's)")
@click.option("--dry-run", is_flag=True, help="list what would be removed, remove nothing")
@click.option(
    "--delete-untagged", is_flag=True, help="also remove manifests no tag reaches (and referrers)"
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="seconds a recently written blob is spared",
)
def gc(
    config_path: str | None, root: str | None, dry_run: bool, delete_untagged: bool, grace: float
) -> None:
    import os

    from registryd.config import load_config
    from registryd.errors import RegistrydError
    from registryd.gc import collect
    from registryd.storage import Storage
    from registryd.uploads import Uploads

    config = load_config(config_path, root=root)
    if not os.path.isdir(os.path.join(config.root, "blobs")):
        raise RegistrydError(f"{config.root} is not a registryd storage root (no blobs/)")
    storage = Storage(config.root)
    uploads = Uploads(storage, config.upload_expiry)
    report = collect(
        storage, uploads, dry_run=dry_run, delete_untagged=delete_untagged, grace=grace
    )
    for line in report.lines():
        click.echo(line)


cli.add_command(htpasswd)  # `registryd htpasswd FILE USER` (registryd/auth/cli.py)


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="registryd", standalone_mode=False)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except PyrunError as err:
        print(f"registryd: {err.message}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
