"""The HTTP seam: one ``Transport`` protocol the registry client talks through, and its
implementation on the standard library's http.client (tests pass a fake one; no socket is
opened in unit tests).

Why not urllib3: importing it costs ~70 ms (its HTTP/2 probe reads package metadata), a third
of a whole pull of a 100 MB image from a local registry; http.client and ssl cost ~40 ms and do
the HTTP/1.1 framing. What urllib3 added is here, kept small:

- a pool of keep-alive connections per origin, shared by the download threads; an idle
  connection the server closed is noticed (poll) and replaced before it is used;
- retries before a response exists: a connection that cannot be made (3 tries, any method),
  a connection that breaks while sending or waiting (idempotent methods, or once on a reused
  connection the server dropped), and 429/5xx answers (idempotent methods), with exponential
  backoff 0, 0.5, 1, 2, 4 s and Retry-After honoured; TLS failures are never retried;
- redirects (5 at most), Authorization dropped when one leaves the origin, 303 becomes GET;
- connect and read timeouts, raw bodies (never decoded: blobs are verified byte for byte) with
  truncation reported. What fails in the middle of a body is the client's business (it resumes
  blobs with Range); the response turns those failures into ``ConnectionFailed``.
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping

from imagetools.errors import RegistryError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import BinaryIO, Protocol

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
BACKOFF = 0.25  # 0, 0.5, 1, 2, 4 s between tries
BACKOFF_MAX = 120.0
RETRY_STATUSES = (429, 500, 502, 503, 504)
RETRY_AFTER_STATUSES = (413, 429, 503)
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5
CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 120.0
SEND_BLOCK = 1 << 20
_BODY_HEADERS = ("content-length", "content-type", "content-range")


class ConnectionFailed(RegistryError):
    """The registry could not be reached, or the connection broke."""


class TLSFailed(ConnectionFailed):
    """The TLS handshake failed (a plain-HTTP server, an untrusted certificate)."""


class Headers(Mapping[str, str]):
    """Response headers, looked up case-insensitively; repeated fields joined with ", "."""

    def __init__(self, fields: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._fields: dict[str, tuple[str, str]] = {}  # lower-case name: (name, value)
        for name, value in fields.items() if isinstance(fields, Mapping) else fields:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        key = name.lower()
        previous = self._fields.get(key)
        self._fields[key] = (
            (name, value) if previous is None else (previous[0], f"{previous[1]}, {value}")
        )

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._fields.values())

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class _Retry(Exception):
    """Internal: this try failed in a way worth another one."""

    def __init__(self, reason: str, connecting: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.connecting = connecting


class HTTPResponse:
    """A streamed answer; closing it gives its connection back to the pool if the body was
    read to the end."""

    def __init__(
        self,
        transport: HTTPTransport,
        origin: tuple[str, str],
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        url: str,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._connection: http.client.HTTPConnection | None = connection
        self._response = response
        self._url = url
        self.status = response.status
        self._headers = Headers(response.msg.items())

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    def read(self, limit: int = 1 << 30) -> bytes:
        parts: list[bytes] = []
        size = 0
        for chunk in self.chunks(1 << 20):
            size += len(chunk)
            if size > limit:
                self.close()
                raise RegistryError(f"{self._url}: answer larger than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def chunks(self, size: int) -> Iterator[bytes]:
        response = self._response
        try:
            while True:
                data = response.read1(size)
                if not data:
                    # http.client ends a short body without a word; the count says it.
                    if response.length:
                        raise ConnectionFailed(
                            f"{self._url}: connection closed with {response.length} bytes to go"
                        )
                    return
                yield data
        except (http.client.HTTPException, OSError) as err:
            self._discard()
            raise ConnectionFailed(f"{self._url}: {_explain(err)}") from None

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        response = self._response
        if response.length == 0:
            response.read()  # marks the response complete (http.client's read1 does not)
        if response.isclosed():
            self._transport._release(self._origin, connection)
        else:
            response.close()
            connection.close()

    def drain(self) -> None:
        """Read a small body to the end (so the connection can be reused) and close."""
        try:
            self.read(64 << 10)
        except RegistryError:
            pass  # too big or broken: read() or chunks() dropped the connection
        self.close()

    def _discard(self) -> None:
        connection, self._connection = self._connection, None
        self._response.close()
        if connection is not None:
            connection.close()


class HTTPTransport:
    """Pooled keep-alive HTTP/1.1 connections, shared by the threads of a pull or push."""

    def __init__(
        self,
        verify: bool = True,
        host: str = "",
        pool_size: int = 8,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        cert_dir: str | None = None,
    ) -> None:
        self.verify = verify
        self.host = host
        self.cert_dir = cert_dir  # None: the certs.d directories of ``host`` (registry/tls.py)
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        from imagetools.registry.proxy import Proxies

        self._proxies = Proxies()

    # -- the request loop -----------------------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body = None,
        stream: bool = False,
    ) -> Response:
        sent = dict(headers)
        rewind = body if body is not None and not isinstance(body, bytes) else None
        position = rewind.tell() if rewind is not None else 0
        if rewind is not None and not any(k.lower() == "content-length" for k in sent):
            sent["Content-Length"] = str(os.fstat(rewind.fileno()).st_size - position)
        failures = connect_failures = redirects = 0
        while True:
            if rewind is not None:
                rewind.seek(position)
            try:
                response = self._exchange(method, url, sent, body)
            except _Retry as retry:
                failures += 1
                connect_failures += retry.connecting
                if failures > RETRIES or connect_failures > CONNECT_RETRIES:
                    raise ConnectionFailed(
                        f"{_origin(url)}: {retry.reason} ({failures} tries)"
                    ) from None
                time.sleep(_backoff(failures))
                continue
            status = response.status
            location = response.headers.get("Location")
            if status in REDIRECT_STATUSES and location and redirects < MAX_REDIRECTS:
                response.drain()
                redirects += 1
                target = urllib.parse.urljoin(url, location)
                if _origin(target) != _origin(url):
                    # Credentials for this registry are not for the CDN it sends blobs to.
                    sent = {k: v for k, v in sent.items() if k.lower() != "authorization"}
                if status == 303 and method != "HEAD":
                    method, body, rewind = "GET", None, None
                    sent = {k: v for k, v in sent.items() if k.lower() not in _BODY_HEADERS}
                url = target
                continue
            if status in RETRY_STATUSES and method in IDEMPOTENT and failures < RETRIES:
                failures += 1
                delay = _retry_after(response) if status in RETRY_AFTER_STATUSES else None
                response.drain()
                time.sleep(_backoff(failures) if delay is None else delay)
                continue
            if not stream:
                # Small answers are read whole so the connection goes back to the pool.
                data = response.read()
                response.close()
                return BufferedResponse(status, response.headers, data)
            return response

    def _exchange(
        self, method: str, url: str, headers: Mapping[str, str], body: Body
    ) -> HTTPResponse:
        """One try: a connection, the request, the status line and headers."""
        parts = urllib.parse.urlsplit(url)
        origin = (parts.scheme, parts.netloc)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        connection, reused = self._acquire(parts)
        if isinstance(connection, _ForwardingConnection):
            # Plain HTTP through a proxy: the whole URL on the request line.
            target = f"{parts.scheme}://{parts.netloc}{target}"
            headers = {**headers, **connection.proxy_headers}
        if connection.sock is None:
            try:
                connection.connect()
                sock: socket.socket = connection.sock  # type: ignore[assignment]
                sock.settimeout(self.read_timeout)
            except ssl.SSLError as err:
                connection.close()
                raise TLSFailed(
                    f"{_origin(url)}: TLS handshake failed: {_ssl_reason(err)}"
                ) from None
            except (OSError, http.client.HTTPException) as err:
                connection.close()
                if str(err).startswith("Tunnel connection failed"):
                    raise ConnectionFailed(
                        f"{_origin(url)}: the proxy refused the tunnel:"
                        f" {str(err).partition(': ')[2]}"
                    ) from None
                raise _Retry(_explain(err), connecting=True) from None
        try:
            connection.request(method, target, body=body, headers=dict(headers))
            response = connection.getresponse()
        except ssl.SSLError as err:
            connection.close()
            raise TLSFailed(f"{_origin(url)}: TLS failed: {_ssl_reason(err)}") from None
        except (OSError, http.client.HTTPException) as err:
            connection.close()
            if reused or method in IDEMPOTENT:
                raise _Retry(_explain(err)) from None
            raise ConnectionFailed(f"{_origin(url)}: {_explain(err)}") from None
        return HTTPResponse(self, origin, connection, response, url)

    # -- the pool -------------------------------------------------------------------------
    def _acquire(self, parts: urllib.parse.SplitResult) -> tuple[http.client.HTTPConnection, bool]:
        origin = (parts.scheme, parts.netloc)
        with self._lock:
            idle = self._idle.get(origin)
            connection = idle.pop() if idle else None
        if connection is not None:
            sock = connection.sock
            if sock is not None and _dropped(sock):
                connection.close()  # the server let it go; request() connects again
                return connection, False
            return connection, sock is not None
        return self._connection(parts), False

    def _connection(self, parts: urllib.parse.SplitResult) -> http.client.HTTPConnection:
        """A new (unconnected) connection to the origin, or to the proxy that leads there."""
        scheme, netloc = parts.scheme, parts.netloc
        if scheme not in ("http", "https"):
            raise RegistryError(f"unsupported URL scheme {scheme!r} in {scheme}://{netloc}")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise RegistryError(f"{scheme}://{netloc}: not a valid port") from None
        host = parts.hostname or ""
        proxy = self._proxies.for_url(scheme, host, port)
        timeout, block = self.connect_timeout, SEND_BLOCK
        if scheme == "https":
            context = self._tls_context()
            if proxy is None:
                return http.client.HTTPSConnection(
                    netloc, timeout=timeout, context=context, blocksize=block
                )
            tunnel = http.client.HTTPSConnection(
                proxy.host, proxy.port, timeout=timeout, context=context, blocksize=block
            )
            tunnel.set_tunnel(host, port, headers=proxy.headers)
            return tunnel
        if proxy is None:
            return http.client.HTTPConnection(netloc, timeout=timeout, blocksize=block)
        forwarding = _ForwardingConnection(proxy.host, proxy.port, timeout=timeout, blocksize=block)
        forwarding.proxy_headers = proxy.headers
        return forwarding

    def _release(self, origin: tuple[str, str], connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self.pool_size:
                idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            pools, self._idle = list(self._idle.values()), {}
        for idle in pools:
            for connection in idle:
                connection.close()

    def _tls_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._context is None:
                from imagetools.registry.tls import context_for

                self._context = context_for(self.host, self.verify, self.cert_dir)
            return self._context


class _ForwardingConnection(http.client.HTTPConnection):
    """A connection to an HTTP proxy that forwards plain-HTTP requests (absolute-form)."""

    proxy_headers: dict[str, str] = {}  # set per instance: Proxy-Authorization


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


def _dropped(sock: socket.socket) -> bool:
    """An idle keep-alive socket that is readable was closed (or spoken to) by the server."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _backoff(failures: int) -> float:
    return 0.0 if failures <= 1 else min(BACKOFF * 2 ** (failures - 1), BACKOFF_MAX)


def _retry_after(response: Response) -> float | None:
    """Retry-After in seconds or as an HTTP date (RFC 9110 10.2.3), capped at BACKOFF_MAX."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return min(float(value), BACKOFF_MAX)
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when - time.time(), BACKOFF_MAX))


def _explain(err: BaseException) -> str:
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, http.client.RemoteDisconnected):
        return "the server closed the connection without an answer"
    if isinstance(err, http.client.IncompleteRead):
        return f"connection closed with {err.expected} bytes to go"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower() if err.strerror[:1].isupper() else err.strerror
    return str(err) or type(err).__name__


def _ssl_reason(err: ssl.SSLError) -> str:
    """``[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:992)`` without the source."""
    return str(err).split(" (_ssl.c:", 1)[0]


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"
