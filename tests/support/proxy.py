"""A recording, fault-injecting HTTP reverse proxy to put in front of a test registry.

``Proxy(upstream)`` listens on 127.0.0.1 (``host``), forwards every request to ``upstream``
("127.0.0.1:PORT", keeping the Host header so the registry's Location headers point back at
the proxy), and records each one in ``requests`` (method, path, headers, start/end times,
status, body bytes sent). ``add(match, fault, times=1)`` arms a fault for the next ``times``
requests whose "METHOD /path" contains ``match``:

- ``Fault(status=503)``      answer that status, do not forward
- ``Fault(drop_after=N)``    forward, send N body bytes, then drop the connection
- ``Fault(truncate_to=N)``   serve only the first N bytes, Content-Length N (a short blob)
- ``Fault(corrupt_at=N)``    flip the bits of body byte N
- ``Fault(delay=S)``         sleep S seconds per 64 KiB chunk (a slow link)
- ``Fault(body=b"...")``     replace the body (Docker-Content-Digest is dropped)

``throttle`` (seconds per 64 KiB chunk of every blob GET) slows all downloads at once.
"""

from __future__ import annotations

import http.client
import http.server
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

CHUNK = 64 << 10
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass
class Fault:
    status: int | None = None
    drop_after: int | None = None
    truncate_to: int | None = None
    corrupt_at: int | None = None
    delay: float = 0.0
    body: bytes | None = None


@dataclass
class Record:
    method: str
    path: str
    headers: dict[str, str]
    start: float
    end: float = 0.0
    status: int = 0
    sent: int = 0
    fault: Fault | None = None

    @property
    def line(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class _Rule:
    match: str
    fault: Fault
    times: int


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a dropped connection is the point of some faults


@dataclass
class Proxy:
    upstream: str
    throttle: float = 0.0
    requests: list[Record] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, match: str, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self._rules.append(_Rule(match, fault, times))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self.requests.clear()
        self.throttle = 0.0

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def find(self, method: str, contains: str = "") -> list[Record]:
        return [r for r in self.requests if r.method == method and contains in r.path]

    # -- the forwarding ---------------------------------------------------------------------
    def _fault_for(self, line: str) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.times > 0 and rule.match in line:
                    rule.times -= 1
                    return rule.fault
        return None

    def _handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        record = Record(handler.command, handler.path, dict(handler.headers), time.monotonic())
        with self._lock:
            self.requests.append(record)
        fault = self._fault_for(record.line)
        record.fault = fault
        try:
            if fault is not None and fault.status is not None:
                payload = b'{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}'
                handler.send_response(fault.status)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(len(payload)))
                handler.end_headers()
                if handler.command != "HEAD":
                    handler.wfile.write(payload)
                record.status = fault.status
                return
            self._forward(handler, record, body, fault)
        finally:
            record.end = time.monotonic()

    def _forward(
        self,
        handler: http.server.BaseHTTPRequestHandler,
        record: Record,
        body: bytes,
        fault: Fault | None,
    ) -> None:
        upstream = http.client.HTTPConnection(self.upstream, timeout=60)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
            upstream.request(handler.command, handler.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            data = response.read() if handler.command != "HEAD" else b""
            record.status = response.status
            out_headers = [
                (k, v)
                for k, v in response.getheaders()
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"
            ]
            length = response.getheader("Content-Length")
            if handler.command != "HEAD":
                length = str(len(data))
            if fault is not None and fault.body is not None:
                data = fault.body
                length = str(len(data))
                out_headers = [
                    (k, v) for k, v in out_headers if k.lower() != "docker-content-digest"
                ]
            if fault is not None and fault.truncate_to is not None:
                data = data[: fault.truncate_to]
                length = str(len(data))
            if fault is not None and fault.corrupt_at is not None and fault.corrupt_at < len(data):
                position = fault.corrupt_at
                data = data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1 :]
            handler.send_response(response.status)
            for key, value in out_headers:
                handler.send_header(key, value)
            if length is not None:
                handler.send_header("Content-Length", length)
            handler.end_headers()
            delay = fault.delay if fault is not None and fault.delay else 0.0
            if not delay and handler.command == "GET" and "/blobs/" in handler.path:
                delay = self.throttle
            limit = fault.drop_after if fault is not None else None
            for start in range(0, len(data), CHUNK):
                piece = data[start : start + CHUNK]
                if limit is not None and record.sent + len(piece) > limit:
                    piece = piece[: limit - record.sent]
                    handler.wfile.write(piece)
                    record.sent += len(piece)
                    handler.wfile.flush()
                    handler.close_connection = True
                    handler.connection.shutdown(socket.SHUT_RDWR)
                    return
                handler.wfile.write(piece)
                record.sent += len(piece)
                if delay:
                    handler.wfile.flush()
                    time.sleep(delay)
        finally:
            upstream.close()
