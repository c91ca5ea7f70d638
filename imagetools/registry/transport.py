"""The HTTP seam: one ``Transport`` protocol the registry client talks through, and its
urllib3 implementation (tests pass a fake one; no socket is opened in unit tests).

urllib3's ``Retry`` handles what happens before a response exists: connection refused or
reset, and 5xx/429 answers, with exponential backoff (0, 0.5, 1, 2, 4 s; Retry-After is
honoured) for idempotent methods, and for every method when the connection could not even be
made (3 tries). TLS failures are not retried. What fails in the middle of a body is the
client's business (it resumes blobs with Range); the response turns those failures into
``ConnectionFailed``.
"""

from __future__ import annotations

import glob
import os
import ssl

from imagetools.errors import RegistryError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import BinaryIO, Protocol

    import urllib3

    Body = bytes | BinaryIO | None

    class Response(Protocol):
        status: int

        @property
        def headers(self) -> Mapping[str, str]: ...

        def read(self, limit: int = ...) -> bytes: ...

        def chunks(self, size: int) -> Iterator[bytes]: ...

        def close(self) -> None: ...

    class Transport(Protocol):
        def request(
            self,
            method: str,
            url: str,
            headers: Mapping[str, str],
            body: Body = None,
            stream: bool = False,
        ) -> Response: ...


RETRIES = 5
CONNECT_RETRIES = 3  # connection refused: 0 + 0.5 + 1 s of patience
BACKOFF = 0.25  # urllib3: 0, 0.5, 1, 2, 4 s between tries
RETRY_STATUSES = (429, 500, 502, 503, 504)
CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 120.0
# Per-registry CA certificates, as docker and podman keep them: <dir>/<host[:port]>/*.crt.
CERT_DIRS = ("/etc/pyrun/certs.d", "/etc/containers/certs.d", "/etc/docker/certs.d")


class ConnectionFailed(RegistryError):
    """The registry could not be reached, or the connection broke."""


class TLSFailed(ConnectionFailed):
    """The TLS handshake failed (a plain-HTTP server, an untrusted certificate)."""


def _explain(err: BaseException) -> str:
    reason = getattr(err, "reason", None) or err
    text = str(reason)
    if "Connection refused" in text:
        return "connection refused"
    if isinstance(reason, ssl.SSLError) or "SSL" in type(reason).__name__:
        return f"TLS handshake failed: {text}"
    return text.split(": ", 1)[-1] if "Max retries" not in text else text


class Urllib3Response:
    def __init__(self, response: urllib3.BaseHTTPResponse, url: str) -> None:
        self._response = response
        self._url = url
        self.status = response.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    def read(self, limit: int = 1 << 30) -> bytes:
        import urllib3.exceptions

        try:
            data = self._response.read(limit + 1, decode_content=False)
        except urllib3.exceptions.HTTPError as err:
            raise ConnectionFailed(f"{self._url}: {_explain(err)}") from None
        if len(data) > limit:
            raise RegistryError(f"{self._url}: answer larger than {limit} bytes")
        return data

    def chunks(self, size: int) -> Iterator[bytes]:
        """The raw body (never decoded: blobs are verified byte for byte)."""
        import urllib3.exceptions

        try:
            while True:
                data = self._response.read1(size, decode_content=False)
                if not data:
                    # read1 may stop short of a truncated body without saying so.
                    expected = self._response.length_remaining
                    if expected:
                        raise ConnectionFailed(
                            f"{self._url}: connection closed with {expected} bytes to go"
                        )
                    return
                yield data
        except urllib3.exceptions.HTTPError as err:
            raise ConnectionFailed(f"{self._url}: {_explain(err)}") from None
        except OSError as err:
            raise ConnectionFailed(f"{self._url}: {err}") from None

    def close(self) -> None:
        self._response.release_conn()
        self._response.close()


class Urllib3Transport:
    """A pooled urllib3 client: keep-alive connections shared by the download threads."""

    def __init__(self, verify: bool = True, host: str = "", pool_size: int = 8) -> None:
        import urllib3

        self.retries = urllib3.Retry(
            total=RETRIES,
            connect=CONNECT_RETRIES,
            read=RETRIES,
            status=RETRIES,
            other=0,  # TLS and certificate failures do not fix themselves
            backoff_factor=BACKOFF,
            status_forcelist=RETRY_STATUSES,
            raise_on_status=False,
            raise_on_redirect=False,
            redirect=5,
        )
        timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT)
        if verify:
            context = ssl.create_default_context()
            for path in _ca_files(host):
                context.load_verify_locations(path)
        else:
            # No certificate checks: no need to load the system's CAs either (~30 ms).
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self.pool = urllib3.PoolManager(
            num_pools=8,
            maxsize=pool_size,
            retries=self.retries,
            timeout=timeout,
            ssl_context=context,
        )

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body = None,
        stream: bool = False,
    ) -> Response:
        import urllib3.exceptions

        try:
            response = self.pool.request(
                method,
                url,
                headers=dict(headers),
                body=body,
                preload_content=False,
                decode_content=False,
            )
        except urllib3.exceptions.SSLError as err:
            raise TLSFailed(f"{_origin(url)}: {_explain(err)}") from None
        except urllib3.exceptions.MaxRetryError as err:
            cls = TLSFailed if isinstance(err.reason, urllib3.exceptions.SSLError) else None
            raise (cls or ConnectionFailed)(f"{_origin(url)}: {_explain(err)}") from None
        except urllib3.exceptions.HTTPError as err:
            raise ConnectionFailed(f"{_origin(url)}: {_explain(err)}") from None
        wrapped = Urllib3Response(response, url)
        if not stream:
            # Small answers are read whole so the connection goes back to the pool.
            data = wrapped.read()
            return BufferedResponse(response.status, response.headers, data)
        return wrapped


class BufferedResponse:
    """A response whose body is already read (also what the unit tests' fakes build on)."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes = b"") -> None:
        self.status = status
        self._headers = headers
        self.body = body

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    def read(self, limit: int = 1 << 30) -> bytes:
        if len(self.body) > limit:
            raise RegistryError(f"answer larger than {limit} bytes")
        return self.body

    def chunks(self, size: int) -> Iterator[bytes]:
        for start in range(0, len(self.body), size):
            yield self.body[start : start + size]

    def close(self) -> None:
        pass


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _ca_files(host: str) -> list[str]:
    found: list[str] = []
    if not host:
        return found
    for base in CERT_DIRS:
        found += sorted(glob.glob(f"{base}/{host}/*.crt"))
    return [path for path in found if os.path.isfile(path)]
