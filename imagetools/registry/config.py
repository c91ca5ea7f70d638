"""Which registries are insecure: ``registries.conf``.

Read from ``$XDG_CONFIG_HOME/pyrun/registries.conf`` (~/.config/pyrun/registries.conf) and
``/etc/pyrun/registries.conf``; both count. The format is TOML, the subset of podman's
containers-registries.conf(5) v2 that pyrun uses::

    # A registry serving plain HTTP (or HTTPS with a certificate nobody vouches for).
    [[registry]]
    location = "127.0.0.1:5000"
    insecure = true

    [[registry]]
    location = "*.lab.example"      # a leading *. matches any subdomain
    insecure = true

An insecure registry is tried over HTTPS without certificate checks first, then over plain
HTTP (skopeo's and podman's behaviour). Like skopeo and podman, and unlike docker, localhost
and 127.0.0.1 are not insecure by default: list them or pass --tls-verify=false.
"""

from __future__ import annotations

import os

from imagetools.errors import RegistryError

SYSTEM_FILE = "/etc/pyrun/registries.conf"


def config_files() -> list[str]:
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return [f"{config}/pyrun/registries.conf", SYSTEM_FILE]


def _matches(location: str, registry: str) -> bool:
    if location.startswith("*."):
        host = registry.split(":", 1)[0] if not registry.startswith("[") else registry
        return host.endswith(location[1:])
    return location == registry


def is_insecure(registry: str, files: list[str] | None = None) -> bool:
    """True if a registries.conf marks ``registry`` (host[:port]) insecure."""
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
            if not isinstance(entry, dict) or not isinstance(entry.get("location"), str):
                raise RegistryError(f"{path}: registry[{position}].location: missing")
            insecure = entry.get("insecure", False)
            if not isinstance(insecure, bool):
                raise RegistryError(f"{path}: registry[{position}].insecure: not a boolean")
            if insecure and _matches(entry["location"], registry):
                return True
    return False
