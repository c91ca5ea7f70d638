"""``pyrun image search [REGISTRY/]TERM [--limit N] [--tls-verify=false] [--no-trunc]``.

Asks the registry's ``GET /v1/search?q=TERM&n=N`` (Docker's search API, which registryd and
Docker Hub serve) and prints a table in ``docker search``'s shape::

    NAME                      DESCRIPTION                 STARS   OFFICIAL
    127.0.0.1:5000/busybox    a small image of busybox    0

A TERM without a registry part (a first component with a dot, a colon, or "localhost")
searches Docker Hub (index.docker.io). Names are printed with their registry, as podman does.
"""

from __future__ import annotations

import json

import click

from imagetools.cli import ImageContext, command, image
from imagetools.cli.registry import cert_dir_option

TRUNCATE = 45
HUB_SEARCH = "index.docker.io"


def split_term(text: str) -> tuple[str, str]:
    """(registry, term): ``127.0.0.1:5000/busy`` -> ("127.0.0.1:5000", "busy")."""
    first, slash, rest = text.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "docker.io", text


def table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    header = ("NAME", "DESCRIPTION", "STARS", "OFFICIAL")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    lines = []
    for row in [header, *rows]:
        cells = [row[i].ljust(widths[i]) for i in range(3)] + [row[3]]
        lines.append("   ".join(cells).rstrip())
    return lines


@image.command("search", help="Search a registry for repositories (docker search's table).")
@click.option("--limit", type=click.IntRange(1, 100), default=25, show_default=True)
@click.option("--no-trunc", is_flag=True, help="do not shorten descriptions")
@click.option(
    "--tls-verify",
    "tls_verify",
    type=click.BOOL,
    default=None,
    help="require HTTPS with a verified certificate (false: also plain HTTP)",
)
@cert_dir_option
@click.argument("term")
@click.pass_obj
@command
def search_command(
    context: ImageContext,
    term: str,
    limit: int,
    no_trunc: bool,
    tls_verify: bool | None,
    cert_dir: str | None,
) -> None:
    from urllib.parse import urlencode

    from imagetools.errors import AuthError, RegistryError
    from imagetools.registry.client import RegistryClient

    registry, query = split_term(term)
    verify = tls_verify if tls_verify is not None else context.tls_verify
    host = HUB_SEARCH if registry == "docker.io" else registry
    client = RegistryClient(host, tls_verify=verify, cert_dir=cert_dir)
    if registry != "docker.io" and client.auth.credentials() is not None:
        # docker search sends the login it has. A registry that also answers anonymously
        # never challenges the search, so learn its scheme (Basic, or a token) from /v2/
        # first; refused credentials are the user's to know about.
        try:
            client.check_login()
        except AuthError:
            raise
        except RegistryError:
            pass  # a search-only server without /v2/: search as we can
    path = "/v1/search?" + urlencode({"q": query, "n": limit})
    response = client.request("GET", path, ())
    try:
        document = json.loads(response.read(8 << 20))
        results = list(document.get("results") or [])[:limit]
    except (ValueError, AttributeError, TypeError) as err:
        raise RegistryError(f"{registry}: GET /v1/search: not a search answer ({err})") from None
    finally:
        response.close()
    rows = []
    for result in results:
        name = str(result.get("name", ""))
        shown = name if registry == "docker.io" else f"{registry}/{name}"
        description = " ".join(str(result.get("description") or "").split())
        if not no_trunc and len(description) > TRUNCATE:
            description = description[: TRUNCATE - 3] + "..."
        stars = str(result.get("star_count") or 0)
        official = "[OK]" if result.get("is_official") else ""
        rows.append((shown, description, stars, official))
    for line in table(rows):
        click.echo(line)
