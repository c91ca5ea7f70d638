"""registries.conf: which registries are insecure, and which mirrors to pull from first.

Read from ``$XDG_CONFIG_HOME/pyrun/registries.conf`` (~/.config/pyrun/registries.conf) and
``/etc/pyrun/registries.conf``; both count, the user's first. The format is TOML, the subset
of podman's containers-registries.conf(5) v2 that pyrun uses::

    # A registry serving plain HTTP (or HTTPS with a certificate nobody vouches for).
    [[registry]]
    location = "127.0.0.1:5000"
    insecure = true

    [[registry]]
    location = "*.lab.example"      # a leading *. matches any subdomain
    insecure = true

    # Pulls of docker.io/... try the mirrors in order, then docker.io itself.
    [[registry]]
    prefix = "docker.io"            # registry[/namespace] the entry is for (default: location)
    location = "docker.io"          # where the prefix really lives (may add a namespace)
    [[registry.mirror]]
    location = "mirror.corp:5000/hub"   # docker.io/library/x -> mirror.corp:5000/hub/library/x
    insecure = true
    pull-from-mirror = "all"            # or "digest-only", "tag-only"

An insecure registry is tried over HTTPS without certificate checks first, then over plain
HTTP (skopeo's and podman's behaviour). Like skopeo and podman, and unlike docker, localhost
and 127.0.0.1 are not insecure by default: list them or pass --tls-verify=false. The entry
with the longest matching prefix applies; a mirror that fails (unreachable, no such image,
refused) is passed over for the next, as podman does. Only pulls use mirrors.
"""

from __future__ import annotations

import os

from imagetools.errors import RegistryError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

SYSTEM_FILE = "/etc/pyrun/registries.conf"


def config_files() -> list[str]:
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return [f"{config}/pyrun/registries.conf", SYSTEM_FILE]


def _matches(location: str, registry: str) -> bool:
    if location.startswith("*."):
        host = registry.split(":", 1)[0] if not registry.startswith("[") else registry
        return host.endswith(location[1:])
    return location == registry


def _entries(files: list[str] | None) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(file, position, [[registry]] table) of every registries.conf, checked."""
    for path in config_files() if files is None else files:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below; tomllib only if it exists
        except FileNotFoundError:
            continue
        import tomllib

        try:
            with handle:
                data = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise RegistryError(f"{path}: {err}") from None
        entries = data.get("registry", [])
        if not isinstance(entries, list):
            raise RegistryError(f"{path}: [[registry]] must be an array of tables")
        for position, entry in enumerate(entries):
            where = f"{path}: registry[{position}]"
            _check_place(entry, where)
            if not isinstance(entry.get("prefix", ""), str):
                raise RegistryError(f"{where}.prefix: not a string")
            yield path, position, entry


def _check_place(table: object, where: str) -> bool:
    """A [[registry]] or [[registry.mirror]] table has a location; returns its insecure."""
    if not isinstance(table, dict) or not isinstance(table.get("location"), str):
        raise RegistryError(f"{where}.location: missing")
    insecure = table.get("insecure", False)
    if not isinstance(insecure, bool):
        raise RegistryError(f"{where}.insecure: not a boolean")
    return insecure


def is_insecure(registry: str, files: list[str] | None = None) -> bool:
    """True if a registries.conf marks ``registry`` (host[:port]) insecure."""
    for _, _, entry in _entries(files):
        if entry.get("insecure", False) and _matches(entry["location"], registry):
            return True
    return False


class Endpoint:
    """One place to pull ``name`` from: a mirror or the registry itself."""

    __slots__ = ("insecure", "mirror", "registry", "repository")

    def __init__(self, registry: str, repository: str, insecure: bool, mirror: bool) -> None:
        self.registry = registry
        self.repository = repository
        self.insecure = insecure
        self.mirror = mirror

    def __repr__(self) -> str:
        kind = "mirror" if self.mirror else "registry"
        return f"Endpoint({kind} {self.registry}/{self.repository}, insecure={self.insecure})"


_PULL_FROM = ("all", "digest-only", "tag-only")


def endpoints(
    registry: str, repository: str, by_digest: bool, files: list[str] | None = None
) -> list[Endpoint]:
    """Where to pull ``registry/repository`` from, in order: the mirrors of the entry with
    the longest matching prefix that serve this kind of pull, then the registry itself."""
    files = config_files() if files is None else files
    name = f"{registry}/{repository}"
    best: tuple[str, int, dict[str, Any]] | None = None
    best_prefix = ""
    for path, position, entry in _entries(files):
        prefix = (entry.get("prefix") or entry["location"]).rstrip("/")
        if prefix.startswith("*.") or not (name == prefix or name.startswith(prefix + "/")):
            continue
        if len(prefix) > len(best_prefix):
            best, best_prefix = (path, position, entry), prefix
    if best is None:
        return [Endpoint(registry, repository, is_insecure(registry, files), mirror=False)]
    path, position, entry = best
    rest = name[len(best_prefix) :]
    found: list[Endpoint] = []
    mirrors = entry.get("mirror", [])
    if not isinstance(mirrors, list):
        raise RegistryError(f"{path}: registry[{position}].mirror must be an array of tables")
    for number, mirror in enumerate(mirrors):
        where = f"{path}: registry[{position}].mirror[{number}]"
        insecure = _check_place(mirror, where)
        serves = mirror.get("pull-from-mirror", "all")
        if serves not in _PULL_FROM:
            raise RegistryError(f"{where}.pull-from-mirror: one of {', '.join(_PULL_FROM)}")
        if (serves == "digest-only" and not by_digest) or (serves == "tag-only" and by_digest):
            continue
        host, _, path_part = (mirror["location"].rstrip("/") + rest).partition("/")
        found.append(Endpoint(host, path_part, insecure or is_insecure(host, files), mirror=True))
    host, _, path_part = (entry["location"].rstrip("/") + rest).partition("/")
    insecure = entry.get("insecure", False) or is_insecure(host, files)
    found.append(Endpoint(host, path_part, insecure, mirror=False))
    return found
