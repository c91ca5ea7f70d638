"""HTTP proxies from the environment, read the way docker, skopeo and podman (Go's
httpproxy) read them, so one set of variables serves every tool on a machine.

- ``HTTPS_PROXY`` / ``https_proxy`` for https:// registries (a CONNECT tunnel through the
  proxy), ``HTTP_PROXY`` / ``http_proxy`` for plain-HTTP ones (absolute-form requests);
  the upper-case spelling wins. A value is ``[http://][user:password@]host[:port]`` (port 80
  by default); the credentials go in ``Proxy-Authorization``. Only plain-HTTP proxies are
  spoken to (an ``https://`` or ``socks5://`` proxy is an error that says so).
- ``NO_PROXY`` / ``no_proxy``: comma-separated ``*``, ``host``, ``host:port``, ``.domain`` or
  ``*.domain`` (subdomains only), ``domain`` (itself and subdomains), IP addresses and CIDR
  ranges.
- ``localhost`` and loopback addresses never go through a proxy.
"""

from __future__ import annotations

import base64
import os
import urllib.parse

from imagetools.errors import RegistryError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


class Proxy:
    """Where to connect instead of the registry, and what to tell the proxy."""

    __slots__ = ("headers", "host", "port", "url")

    def __init__(self, url: str, host: str, port: int, headers: dict[str, str]) -> None:
        self.url = url
        self.host = host
        self.port = port
        self.headers = headers  # Proxy-Authorization, when the URL carries credentials


class Proxies:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._urls = {
            "https": _first(env, "HTTPS_PROXY", "https_proxy"),
            "http": _first(env, "HTTP_PROXY", "http_proxy"),
        }
        self._no_proxy = [
            entry.strip().lower()
            for entry in _first(env, "NO_PROXY", "no_proxy").split(",")
            if entry.strip()
        ]
        self._parsed: dict[str, Proxy] = {}

    def for_url(self, scheme: str, host: str, port: int) -> Proxy | None:
        """The proxy for a connection to ``scheme://host:port``, or None to go directly."""
        value = self._urls.get(scheme, "")
        if not value or _loopback(host) or self._bypassed(host.lower(), port):
            return None
        if scheme not in self._parsed:
            self._parsed[scheme] = _parse(value)
        return self._parsed[scheme]

    def _bypassed(self, host: str, port: int) -> bool:
        for entry in self._no_proxy:
            if entry == "*":
                return True
            if "/" in entry:
                if _in_network(host, entry):
                    return True
                continue
            name, wanted_port = _split_port(entry)
            if wanted_port is not None and wanted_port != port:
                continue
            name = name[1:] if name.startswith("*.") else name  # *.corp is .corp
            if name.startswith("."):
                if host.endswith(name):
                    return True
            elif host == name or host.endswith("." + name):
                return True
        return False


def _first(env: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = env.get(name)
        if value:
            return value.strip()
    return ""


def _parse(value: str) -> Proxy:
    text = value if "://" in value else f"http://{value}"
    parts = urllib.parse.urlsplit(text)
    if parts.scheme != "http":
        raise RegistryError(
            f"proxy {value}: only plain-HTTP proxies (http://host:port) are supported,"
            f" not {parts.scheme}://"
        )
    try:
        port = parts.port or 80
    except ValueError:
        raise RegistryError(f"proxy {value}: not a valid port") from None
    if not parts.hostname:
        raise RegistryError(f"proxy {value}: no host")
    headers: dict[str, str] = {}
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Proxy-Authorization"] = f"Basic {token}"
    return Proxy(f"http://{parts.hostname}:{port}", parts.hostname, port, headers)


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [::1]:5000
        name, _, rest = entry[1:].partition("]")
        return name, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    name, colon, port = entry.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        return name, int(port)
    return entry, None


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _in_network(host: str, cidr: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
