"""Which registry connections go through a proxy, as Go's httpproxy (docker, skopeo,
podman) decides it from HTTP(S)_PROXY and NO_PROXY."""

from __future__ import annotations

import base64

import pytest

from imagetools.errors import RegistryError
from imagetools.registry.proxy import Proxies

ENV = {
    "HTTPS_PROXY": "http://u:p%40ss@proxy.corp:3128",
    "https_proxy": "http://ignored:1",
    "http_proxy": "plain.corp",
    "no_proxy": " example.com, .internal,*.lab , 10.0.0.0/8,reg:5000,192.0.2.7,[2001:db8::1]:443",
}


@pytest.mark.parametrize(
    ("scheme", "host", "port", "proxied"),
    [
        ("https", "registry-1.docker.io", 443, "http://proxy.corp:3128"),
        ("http", "registry-1.docker.io", 80, "http://plain.corp:80"),
        ("https", "example.com", 443, None),  # a domain: itself ...
        ("https", "a.b.example.com", 443, None),  # ... and its subdomains
        ("https", "notexample.com", 443, "http://proxy.corp:3128"),
        ("https", "internal", 443, "http://proxy.corp:3128"),  # .domain: subdomains only
        ("https", "x.internal", 443, None),
        ("https", "x.lab", 443, None),  # *.lab is .lab
        ("https", "10.20.30.40", 443, None),  # CIDR
        ("https", "11.0.0.1", 443, "http://proxy.corp:3128"),
        ("https", "reg", 5000, None),  # host:port: that port only
        ("https", "reg", 443, "http://proxy.corp:3128"),
        ("https", "192.0.2.7", 443, None),
        ("https", "2001:db8::1", 443, None),
        ("https", "2001:db8::1", 5000, "http://proxy.corp:3128"),
        ("https", "localhost", 443, None),  # loopback: never proxied
        ("https", "127.0.0.9", 443, None),
        ("https", "::1", 443, None),
    ],
)
def test_which_connections_are_proxied(
    scheme: str, host: str, port: int, proxied: str | None
) -> None:
    found = Proxies(ENV).for_url(scheme, host, port)
    assert (found.url if found else None) == proxied


def test_credentials_become_proxy_authorization() -> None:
    found = Proxies(ENV).for_url("https", "quay.io", 443)
    assert found is not None and (found.host, found.port) == ("proxy.corp", 3128)
    assert found.headers == {"Proxy-Authorization": "Basic " + base64.b64encode(b"u:p@ss").decode()}
    plain = Proxies(ENV).for_url("http", "quay.io", 80)
    assert plain is not None and plain.headers == {}


def test_no_variables_and_a_star_mean_direct() -> None:
    assert Proxies({}).for_url("https", "quay.io", 443) is None
    assert Proxies({"HTTPS_PROXY": "p:1", "NO_PROXY": "*"}).for_url("https", "q", 443) is None
    assert Proxies({"HTTP_PROXY": "p:1"}).for_url("https", "q", 443) is None  # https only


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://proxy:443", "only plain-HTTP proxies"),
        ("socks5://proxy:1080", "not socks5://"),
        ("http://proxy:notaport", "not a valid port"),
        ("http://", "no host"),
    ],
)
def test_unusable_proxies_are_named(value: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message) as caught:
        Proxies({"HTTPS_PROXY": value}).for_url("https", "quay.io", 443)
    assert value in caught.value.message
