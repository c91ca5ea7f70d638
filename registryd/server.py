"""The HTTP/1.1 server: stdlib ``ThreadingHTTPServer``, one thread per connection.

Why this and not asyncio or a framework: the work per request is either tiny (JSON, a stat)
or bulk I/O that releases the GIL — ``os.sendfile`` for blob GETs (the kernel copies the
file to the socket, no Python in the loop), and 1 MiB ``readinto`` + ``hashlib.update`` +
``write`` for uploads (each drops the GIL). Threads therefore run the bulk paths in parallel,
and the code stays plain blocking Python that every stdlib piece (ssl, sendfile) supports.
A pure-asyncio server would need a thread pool for file I/O and hashing anyway.

What the stdlib handler does not do, done here: keep-alive with ``Content-Length`` on every
response, chunked request bodies (registryd.body), ``Expect: 100-continue`` answered only
when the body is actually read, TCP_NODELAY, TLS handshakes in the connection's thread (not
the accept loop), and a graceful stop that finishes the requests in flight.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from registryd.api.common import Headers, Request, Response, json_response
from registryd.body import BadBody, BodyReader, IncompleteBody

if TYPE_CHECKING:
    import ssl

    from registryd.accesslog import AccessLog
    from registryd.app import Registry

log = logging.getLogger("registryd")

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
DRAIN_LIMIT = 256 * 1024  # unread body bytes we swallow to keep a connection alive
IDLE_TIMEOUT = 300.0  # an idle keep-alive connection, or a body that stalls this long, ends


class RegistryServer(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not hold up a stop
    block_on_close = False
    request_queue_size = 1024  # 16 clients x 6 parallel blob fetches connect at once
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        registry: Registry,
        access_log: AccessLog | None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, RegistryHandler)
        self.registry = registry
        self.access_log = access_log
        self.ssl_context = ssl_context
        self.draining = False
        self._in_flight = 0
        self._idle = threading.Condition()

    def begin(self) -> None:
        with self._idle:
            self._in_flight += 1

    def end(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """After shutdown(): wait for the requests being served to finish."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s failed", client_address, exc_info=True)


class RegistryHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "registryd"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT
    server: RegistryServer

    def setup(self) -> None:
        context = self.server.ssl_context
        if context is not None:
            self.request.settimeout(self.timeout)
            self.request = context.wrap_socket(self.request, server_side=True)
        self._expect_continue = False
        super().setup()

    def handle_one_request(self) -> None:
        self._expect_continue = False
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError, OSError) as err:
            if isinstance(err, OSError) and err.errno not in _GONE:
                log.debug("connection error: %s", err)
            self.close_connection = True

    def handle_expect_100(self) -> bool:
        # Answered when the handler first reads the body (BodyReader), not now: a request
        # refused before that (auth, bad name) never makes the client send its body.
        self._expect_continue = True
        return True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._serve()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # -- one request -------------------------------------------------------------------------

    def _serve(self) -> None:
        server = self.server
        server.begin()
        started = time.monotonic()
        server.registry.metrics.started()
        response: Response | None = None
        body: BodyReader | None = None
        sent = 0
        account = None
        try:
            body = self._body()
            request = self._request(body)
            if server.draining:
                self.close_connection = True
                response = json_response(
                    503, {"errors": [{"code": "UNAVAILABLE", "message": "shutting down"}]}
                )
            else:
                response = server.registry.handle(request)
            account = request.account
            if not body.done and not body.drain(DRAIN_LIMIT):
                self.close_connection = True  # unread body: the stream is out of step
            if server.draining:
                self.close_connection = True  # stopping: no next request on this one
            sent = self._send(response)
        except _BadRequest as err:
            self.close_connection = True
            response = json_response(
                400, {"errors": [{"code": "UNSUPPORTED", "message": str(err)}]}
            )
            sent = self._send(response)
        except (IncompleteBody, BadBody, ConnectionError, TimeoutError) as err:
            self.close_connection = True
            if isinstance(err, BadBody) and response is None:
                response = json_response(
                    400, {"errors": [{"code": "UNSUPPORTED", "message": f"bad body: {err}"}]}
                )
                try:
                    sent = self._send(response)
                except OSError:
                    pass
        finally:
            status = response.status if response is not None else 499
            received = body.received if body is not None else 0
            server.registry.metrics.finished(self.command, status, received, sent)
            server.end()
            if server.access_log is not None:
                server.access_log.request(
                    remote=self.client_address[0],
                    account=account,
                    method=self.command,
                    path=self.path,
                    status=status,
                    bytes_in=received,
                    bytes_out=sent,
                    seconds=time.monotonic() - started,
                )

    def _body(self) -> BodyReader:
        encoding = (self.headers.get("Transfer-Encoding") or "").strip().lower()
        chunked = encoding == "chunked"
        if encoding and not chunked:
            raise _BadRequest(f"unsupported Transfer-Encoding {encoding!r}")
        length = None
        text = self.headers.get("Content-Length")
        if text is not None and chunked:
            self.close_connection = True  # both framings: RFC 9112 §6.1, never reuse this one
        if text is not None and not chunked:
            text = text.strip()
            if not text.isdigit() or len(text) > 19:
                raise _BadRequest("bad Content-Length")
            length = int(text)
        before = self._send_continue if self._expect_continue else None
        return BodyReader(self.rfile, length, chunked, before)

    def _request(self, body: BodyReader) -> Request:
        target = self.path
        if not target.startswith("/"):
            target = urlsplit(target).path or "/"  # absolute-form (a proxy's request line)
            query = urlsplit(self.path).query
        else:
            target, _, query = target.partition("?")
        return Request(
            method=self.command,
            path=unquote(target),
            query=parse_qs(query, keep_blank_values=True),
            headers=Headers(list(self.headers.items())),
            body=body,
            remote=self.client_address[0],
        )

    def _send_continue(self) -> None:
        self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _send(self, response: Response) -> int:
        """Write ``response``; the body bytes sent (0 for HEAD)."""
        status = response.status
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        lines = [f"HTTP/1.1 {status} {phrase}", f"{API_VERSION[0]}: {API_VERSION[1]}"]
        lines.append(f"Date: {self.date_time_string()}")
        headers = response.headers
        for key, value in headers.items():
            lines.append(f"{key}: {value}")
        if status != 204 and status >= 200 and "Content-Length" not in headers:
            lines.append(f"Content-Length: {response.length}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.command == "HEAD" or status in (204, 304):
            if response.file is not None:
                os.close(response.file.fd)
            self.wfile.write(head)
            return 0
        if response.file is None:
            self.wfile.write(head + response.body)
            return len(response.body)
        return self._send_file(head, response)

    def _send_file(self, head: bytes, response: Response) -> int:
        assert response.file is not None
        part = response.file
        with os.fdopen(part.fd, "rb", buffering=0) as f:
            if part.count == 0:
                self.wfile.write(head)
                return 0
            if self.server.ssl_context is not None:
                self.wfile.write(head)
                return _send_encrypted(self.connection, part.fd, part.offset, part.count)
            # MSG_MORE: the headers leave in the same segment as the file's first bytes.
            self.connection.sendall(head, socket.MSG_MORE)
            return _sendfile_blocking(self.connection, f.fileno(), part.offset, part.count)


def _sendfile_blocking(connection: socket.socket, fd: int, offset: int, count: int) -> int:
    """sendfile(2) on the socket in blocking mode: one system call that returns when the
    kernel took everything (no GIL round trip each time the send buffer drains, as
    socket.sendfile's poll loop does), with the kernel's SO_SNDTIMEO for a stalled client."""
    timeout = connection.gettimeout()
    connection.settimeout(None)
    seconds = int(timeout or IDLE_TIMEOUT)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", seconds, 0))
    sent = 0
    try:
        while sent < count:
            n = os.sendfile(connection.fileno(), fd, offset + sent, count - sent)
            if n == 0:
                break  # the file is shorter than announced
            sent += n
    except BlockingIOError:
        raise TimeoutError("client stopped reading") from None
    finally:
        connection.settimeout(timeout)
    return sent


def _send_encrypted(connection: socket.socket, fd: int, offset: int, count: int) -> int:
    """TLS cannot use sendfile(2); socket.sendfile's fallback sends 8 KiB per Python call,
    this 1 MiB."""
    buffer = bytearray(min(count, 1 << 20))
    view = memoryview(buffer)
    sent = 0
    while sent < count:
        n = os.preadv(fd, [view[: min(len(view), count - sent)]], offset + sent)
        if n <= 0:
            break  # the file is shorter than announced: the client sees a short body
        connection.sendall(view[:n])
        sent += n
    return sent


class _BadRequest(Exception):
    """Framing the server cannot work with (Content-Length, Transfer-Encoding)."""


_GONE = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.EBADF, errno.ETIMEDOUT, None)
