"""``pyrun image pull|push|login|logout``: the registry commands.

- ``pull [--platform os/arch[/variant]] [--tls-verify=false] [-q] REF``: progress on stderr
  (bars on a terminal, lines otherwise, nothing with -q); the manifest's digest on stdout.
- ``push [--tls-verify=false] REF [DEST]``: a stored image to its own name or to DEST; the
  pushed digest on stdout.
- ``login REGISTRY -u USER [-p PASS | --password-stdin]``: checks the credentials with the
  registry, then stores them in $XDG_CONFIG_HOME/pyrun/auth.json (0600).
- ``logout REGISTRY``: forgets them.

Network and HTTP code is imported only when one of these runs.
"""

from __future__ import annotations

import sys

import click

from imagetools.cli import ImageContext, command, image

_TLS_HELP = (
    "require HTTPS with a verified certificate (the default); false: try HTTPS without"
    " verification, then plain HTTP"
)


def _tls(option: bool | None, context: ImageContext) -> bool | None:
    return option if option is not None else context.tls_verify


_CERT_DIR_HELP = "the registry's CA (*.crt) and client (*.cert + *.key) certificates"
cert_dir_option = click.option(
    "--cert-dir", type=click.Path(file_okay=False), default=None, help=_CERT_DIR_HELP
)


@image.command("pull", help="Pull an image from a registry into the store.")
@click.option("--platform", default=None, help="os/arch[/variant] (default: this machine)")
@click.option("--tls-verify", "tls_verify", type=click.BOOL, default=None, help=_TLS_HELP)
@cert_dir_option
@click.option("-q", "--quiet", is_flag=True, help="no progress, only the digest")
@click.argument("ref")
@click.pass_obj
@command
def pull_command(
    context: ImageContext,
    ref: str,
    platform: str | None,
    tls_verify: bool | None,
    cert_dir: str | None,
    quiet: bool,
) -> None:
    from imagetools.progress import with_progress
    from imagetools.pull import pull

    descriptor = with_progress(
        quiet,
        lambda progress: pull(
            context.store(),
            ref,
            platform=platform,
            tls_verify=_tls(tls_verify, context),
            progress=progress,
            cert_dir=cert_dir,
        ),
    )
    click.echo(descriptor["digest"])


@image.command("push", help="Push a stored image to a registry (to DEST: another name).")
@click.option("--tls-verify", "tls_verify", type=click.BOOL, default=None, help=_TLS_HELP)
@cert_dir_option
@click.option("-q", "--quiet", is_flag=True, help="no progress, only the digest")
@click.argument("ref")
@click.argument("dest", required=False)
@click.pass_obj
@command
def push_command(
    context: ImageContext,
    ref: str,
    dest: str | None,
    tls_verify: bool | None,
    cert_dir: str | None,
    quiet: bool,
) -> None:
    from imagetools.progress import with_progress
    from imagetools.push import push

    descriptor = with_progress(
        quiet,
        lambda progress: push(
            context.store(),
            ref,
            dest,
            tls_verify=_tls(tls_verify, context),
            progress=progress,
            cert_dir=cert_dir,
        ),
    )
    click.echo(descriptor["digest"])


@image.command("login", help="Log in to a registry; credentials go to pyrun's auth.json.")
@click.option("-u", "--username", default=None)
@click.option("-p", "--password", default=None, help="(visible to ps: prefer --password-stdin)")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@click.option("--tls-verify", "tls_verify", type=click.BOOL, default=None, help=_TLS_HELP)
@cert_dir_option
@click.argument("registry")
@click.pass_obj
@command
def login_command(
    context: ImageContext,
    registry: str,
    username: str | None,
    password: str | None,
    password_stdin: bool,
    tls_verify: bool | None,
    cert_dir: str | None,
) -> None:
    from imagetools.errors import AuthError
    from imagetools.registry import credentials
    from imagetools.registry.client import RegistryClient

    if password is not None and password_stdin:
        raise AuthError("--password and --password-stdin are mutually exclusive")
    if username is None:
        if not sys.stdin.isatty() or password_stdin:
            raise AuthError("a username is required (-u USER)")
        username = click.prompt("Username")
    if password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    elif password is None:
        if not sys.stdin.isatty():
            raise AuthError("a password is required (-p PASS or --password-stdin)")
        password = click.prompt("Password", hide_input=True)
    if not username or not password:
        raise AuthError("the username and the password must not be empty")
    key = credentials.normalize_key(registry)
    given = credentials.Credentials(username, password)
    client = RegistryClient(
        key, tls_verify=_tls(tls_verify, context), credentials=lambda: given, cert_dir=cert_dir
    )
    client.check_login()
    path = credentials.save(key, given)
    click.echo(f"Login Succeeded ({path})")


@image.command("logout", help="Forget the credentials of a registry.")
@click.argument("registry")
@command
def logout_command(registry: str) -> None:
    from imagetools.errors import AuthError
    from imagetools.registry import credentials

    key = credentials.normalize_key(registry)
    if not credentials.remove(key):
        raise AuthError(f"not logged in to {key} ({credentials.auth_file()})")
    click.echo(f"Removed login credentials for {key}")
