"""The registry client's HTTP seam faked for the unit tests (no sockets): ``FakeTransport``
records every request as a ``Sent`` and answers it with a handler (a function, or an in-memory
registry with ``__call__``); ``fake_client(handler)`` is a RegistryClient for ``reg.example``
over one; ``answer(status, body, Header_Name=value)`` builds a response."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from imagetools.registry import credentials
from imagetools.registry.client import RegistryClient
from imagetools.registry.transport import BufferedResponse, Headers


class Sent:
    def __init__(self, method: str, url: str, headers: Mapping[str, str], body: Any) -> None:
        self.method = method
        self.url = url
        self.headers = dict(headers)
        self.body = body


Handler = Callable[[Sent], BufferedResponse]


class FakeTransport:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sent: list[Sent] = []

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Any = None,
        stream: bool = False,
    ) -> BufferedResponse:
        sent = Sent(method, url, headers, body)
        self.sent.append(sent)
        return self.handler(sent)


def fake_client(
    handler: Handler, creds: credentials.Credentials | None = None
) -> tuple[RegistryClient, FakeTransport]:
    """A client of ``reg.example`` (HTTPS, verified) whose requests ``handler`` answers."""
    transport = FakeTransport(handler)
    client = RegistryClient(
        "reg.example", tls_verify=True, transport=transport, credentials=lambda: creds
    )
    return client, transport


def answer(status: int, body: bytes = b"", **headers: str) -> BufferedResponse:
    """A response; ``Www_Authenticate="..."`` is the header WWW-Authenticate."""
    merged = Headers({k.replace("_", "-"): v for k, v in headers.items()})
    return BufferedResponse(status, merged, body)
