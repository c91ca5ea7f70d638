"""``registryd htpasswd FILE USER``: add a user or change a password (bcrypt).

The password is read from standard input when it is not a terminal (one line, the newline
dropped), otherwise prompted for twice without echo. The file is created 0600.
"""

from __future__ import annotations

import sys

import click


@click.command("htpasswd")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("user")
@click.option(
    "--cost", type=click.IntRange(4, 31), default=10, show_default=True, help="bcrypt cost"
)
def htpasswd(file: str, user: str, cost: int) -> None:
    """Set USER's password in the htpasswd FILE (bcrypt), creating the file 0600."""
    from registryd.auth.htpasswd import add_user

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    new = add_user(file, user, password, cost)
    click.echo(f"{'added' if new else 'updated'} user {user} in {file}", err=True)
