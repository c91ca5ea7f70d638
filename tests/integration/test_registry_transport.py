"""The registry client's HTTP transport against small scripted servers on 127.0.0.1:
keep-alive reuse, idle connections the server dropped, retries and their limits, Retry-After,
redirects (Authorization never follows to another origin), truncated, chunked and slow answers,
file bodies sent again after a retry, many threads on one pool, TLS to a plain-HTTP port; and
HTTP and HTTPS through a forward proxy (credentials, NO_PROXY, a refused tunnel)."""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import select
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imagetools.registry import transport as transport_module
from imagetools.registry.transport import ConnectionFailed, HTTPTransport, TLSFailed
from tests.support.tls import self_signed

Script = Callable[[http.server.BaseHTTPRequestHandler, bytes], None]


class Server:
    """Answers each request with ``script(handler, body)``; counts connections and requests."""

    def __init__(self, script: Script, address: str = "127.0.0.1", tls: Path | None = None) -> None:
        self.script = script
        self.address = address
        self.connections = 0
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body leave in separate writes: without this, Nagle and the
                # client's delayed ACK add 40 ms to every answer.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                outer.connections += 1

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append((self.command, self.path, dict(self.headers), body))
                outer.script(self, body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        class Quiet(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self.httpd = Quiet((address, 0), Handler)
        self.port = self.httpd.server_address[1]
        self.scheme = "http"
        if tls is not None:  # tls: a directory with cert.pem and key.pem
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls / "cert.pem", tls / "key.pem")
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.address}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def serve() -> Iterator[Callable[[Script], Server]]:
    started: list[Server] = []

    def start(script: Script) -> Server:
        started.append(Server(script))
        return started[-1]

    yield start
    for server in started:
        server.close()


def reply(
    handler: http.server.BaseHTTPRequestHandler,
    status: int = 200,
    body: bytes = b"",
    **headers: str,
) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def test_sequential_requests_share_one_keep_alive_connection(serve: Any) -> None:
    server = serve(lambda h, body: reply(h, 200, h.path.encode()))
    transport = HTTPTransport(verify=False)
    answers = [transport.request("GET", server.url(f"/n/{n}"), {}).read() for n in range(20)]
    head = transport.request("HEAD", server.url("/head"), {})
    assert answers == [f"/n/{n}".encode() for n in range(20)] and head.status == 200
    assert server.connections == 1


def test_an_idle_connection_the_server_closed_is_replaced(serve: Any) -> None:
    def close_after_answer(handler: Any, body: bytes) -> None:
        reply(handler, 201 if handler.command == "POST" else 200, b"ok")
        handler.close_connection = True  # a keep-alive timeout the client is not told about

    server = serve(close_after_answer)
    transport = HTTPTransport(verify=False)
    assert transport.request("GET", server.url("/a"), {}).status == 200
    time.sleep(0.1)
    # Not idempotent: only a connection known to be fresh (or dropped unused) may carry it.
    assert transport.request("POST", server.url("/b"), {"Content-Length": "0"}).status == 201
    assert [r[0] for r in server.requests] == ["GET", "POST"] and server.connections == 2


def test_5xx_is_retried_for_get_with_backoff_and_not_for_post(serve: Any) -> None:
    counts: dict[str, int] = {}

    def flaky(handler: Any, body: bytes) -> None:
        counts[handler.path] = counts.get(handler.path, 0) + 1
        reply(handler, 503 if counts[handler.path] < 3 else 200, b"x")

    server = serve(flaky)
    transport = HTTPTransport(verify=False)
    started = time.monotonic()
    assert transport.request("GET", server.url("/get"), {}).status == 200
    assert 0.5 <= time.monotonic() - started < 2  # 0 s, then 0.5 s
    assert transport.request("POST", server.url("/post"), {}).status == 503
    assert counts == {"/get": 3, "/post": 1}


def test_retry_after_is_honoured(serve: Any) -> None:
    answers = iter([(429, "1"), (200, "")])

    def busy_once(handler: Any, body: bytes) -> None:
        status, after = next(answers)
        reply(handler, status, b"slow down", **({"Retry_After": after} if after else {}))

    server = serve(busy_once)
    started = time.monotonic()
    response = HTTPTransport(verify=False).request("GET", server.url("/busy"), {})
    assert response.status == 200 and 1 <= time.monotonic() - started < 2  # not 0 s


def test_retries_end_with_the_last_answer(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport_module, "BACKOFF", 0.01)
    server = serve(lambda h, body: reply(h, 502, b"bad gateway"))
    response = HTTPTransport(verify=False).request("GET", server.url("/down"), {})
    assert response.status == 502 and response.read() == b"bad gateway"
    assert len(server.requests) == 6  # the first try and five retries


def test_connection_refused_fails_after_three_retries(serve: Any) -> None:
    server = serve(lambda h, body: reply(h))
    url = server.url("/v2/")
    server.close()
    transport = HTTPTransport(verify=False)
    started = time.monotonic()
    with pytest.raises(ConnectionFailed, match=r"connection refused \(4 tries\)"):
        transport.request("GET", url, {})
    assert 1.5 <= time.monotonic() - started < 3  # 0 + 0.5 + 1 s


def test_tls_to_a_plain_http_port_fails_at_once(serve: Any) -> None:
    server = serve(lambda h, body: reply(h))
    with pytest.raises(TLSFailed, match="TLS handshake failed"):
        HTTPTransport(verify=False).request("GET", f"https://127.0.0.1:{server.port}/v2/", {})
    assert server.connections == 1


def test_redirects_keep_authorization_only_within_the_origin(serve: Any) -> None:
    cdn = serve(lambda h, body: reply(h, 200, b"blob"))

    def registry(handler: Any, body: bytes) -> None:
        if handler.path == "/same":
            reply(handler, 307, Location="/other")
        elif handler.path == "/other":
            reply(handler, 302, Location=cdn.url("/blob?sig=1", host="localhost"))
        else:
            reply(handler, 404)

    server = serve(registry)
    transport = HTTPTransport(verify=False)
    response = transport.request("GET", server.url("/same"), {"Authorization": "Bearer T"})
    assert response.status == 200 and response.read() == b"blob"
    assert [(r[1], r[2].get("Authorization")) for r in server.requests] == [
        ("/same", "Bearer T"),
        ("/other", "Bearer T"),
    ]
    assert cdn.requests[0][1] == "/blob?sig=1" and "Authorization" not in cdn.requests[0][2]


def test_303_becomes_a_get_and_a_redirect_loop_stops(serve: Any) -> None:
    def script(handler: Any, body: bytes) -> None:
        if handler.path == "/upload":
            reply(handler, 303, Location="/done")
        elif handler.path == "/done":
            reply(handler, 200, handler.command.encode())
        else:
            reply(handler, 302, Location=handler.path + "x")

    server = serve(script)
    transport = HTTPTransport(verify=False)
    posted = transport.request("POST", server.url("/upload"), {}, body=b"payload")
    assert posted.status == 200 and posted.read() == b"GET"
    assert server.requests[1][:2] == ("GET", "/done") and server.requests[1][3] == b""
    looping = transport.request("GET", server.url("/loop"), {})
    assert looping.status == 302 and len(server.requests) == 2 + 6


def test_a_short_body_is_reported_and_a_chunked_one_is_read(serve: Any) -> None:
    def script(handler: Any, body: bytes) -> None:
        handler.send_response(200)
        if handler.path == "/short":
            handler.send_header("Content-Length", "1000")
            handler.end_headers()
            handler.wfile.write(b"a" * 500)
            handler.close_connection = True
            return
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for part in (b"abc", b"defg" * 1000):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        handler.wfile.write(b"0\r\n\r\n")

    server = serve(script)
    transport = HTTPTransport(verify=False)
    short = transport.request("GET", server.url("/short"), {}, stream=True)
    with pytest.raises(ConnectionFailed, match="500 bytes to go"):
        b"".join(short.chunks(1 << 16))
    chunked = transport.request("GET", server.url("/chunked"), {}, stream=True)
    assert b"".join(chunked.chunks(100)) == b"abc" + b"defg" * 1000
    chunked.close()
    assert transport.request("GET", server.url("/chunked"), {}).status == 200
    assert server.connections == 2  # the chunked answer's connection went back to the pool


def test_a_silent_server_times_out(serve: Any) -> None:
    release = threading.Event()
    server = serve(lambda h, body: (release.wait(5), reply(h)))
    transport = HTTPTransport(verify=False, read_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(ConnectionFailed, match="timed out"):
        transport.request("POST", server.url("/slow"), {})
    assert time.monotonic() - started < 2
    release.set()


def test_a_file_body_is_sent_whole_again_after_a_retry(serve: Any, tmp_path: Path) -> None:
    answers = iter([503, 201])
    server = serve(lambda h, body: reply(h, next(answers)))
    blob = tmp_path / "blob"
    blob.write_bytes(b"0123456789" * 300_000)
    with blob.open("rb") as body:
        body.seek(10)
        response = HTTPTransport(verify=False).request("PUT", server.url("/put"), {}, body=body)
    assert response.status == 201
    sent = [r[3] for r in server.requests]
    assert sent == [blob.read_bytes()[10:]] * 2
    assert server.requests[0][2]["Content-Length"] == str(3_000_000 - 10)


def test_threads_share_the_pool(serve: Any) -> None:
    server = serve(lambda h, body: reply(h, 200, h.path.encode() * 1000))
    transport = HTTPTransport(verify=False, pool_size=8)
    failures: list[str] = []

    def worker(number: int) -> None:
        for n in range(25):
            path = f"/{number}/{n}"
            response = transport.request("GET", server.url(path), {}, stream=True)
            if b"".join(response.chunks(4096)) != path.encode() * 1000:
                failures.append(path)
            response.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and len(server.requests) == 200
    assert server.connections <= 8  # one per thread at most, each reused
    transport.close()


def test_response_headers_are_case_insensitive(serve: Any) -> None:
    server = serve(lambda h, body: reply(h, 200, b"{}", Docker_Content_Digest="sha256:x"))
    response = HTTPTransport(verify=False).request("GET", server.url("/"), {})
    assert response.headers["docker-content-digest"] == "sha256:x"
    assert response.headers.get("DOCKER-CONTENT-DIGEST") == "sha256:x"
    assert "Content-Length" in response.headers and "X-Missing" not in response.headers
    assert response.read() == b"{}"


# -- proxies --------------------------------------------------------------------------------------


class ForwardProxy:
    """An HTTP proxy on 127.0.0.1: CONNECT tunnels and absolute-form forwarding; records each
    request line with its Proxy-Authorization; ``refuse`` answers every CONNECT with 407."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []
        self.refuse = False
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_CONNECT(self) -> None:
                outer.seen.append(("CONNECT", self.path, self.headers.get("Proxy-Authorization")))
                if outer.refuse:
                    self.send_response(407, "Proxy Authentication Required")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                host, _, port = self.path.rpartition(":")
                upstream = socket.create_connection((host, int(port)), timeout=10)
                self.send_response(200, "Connection established")
                self.end_headers()
                sockets = [self.connection, upstream]
                while True:
                    readable, _, _ = select.select(sockets, [], [], 10)
                    if not readable:
                        break
                    for sock in readable:
                        data = sock.recv(65536)
                        if not data:
                            upstream.close()
                            self.close_connection = True
                            return
                        (upstream if sock is self.connection else self.connection).sendall(data)

            def do_GET(self) -> None:
                outer.seen.append(("GET", self.path, self.headers.get("Proxy-Authorization")))
                target = urllib.parse.urlsplit(self.path)
                upstream = http.client.HTTPConnection(target.netloc, timeout=10)
                forwarded = {
                    k: v for k, v in self.headers.items() if k.lower() != "proxy-authorization"
                }
                upstream.request("GET", target.path or "/", headers=forwarded)
                answer = upstream.getresponse()
                body = answer.read()
                self.send_response(answer.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                upstream.close()

        class Quiet(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def _outside_address() -> str:
    """An IPv4 address of this machine that is not loopback (loopback is never proxied)."""
    listed = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True)
    for link in json.loads(listed.stdout or "[]"):
        for address in link.get("addr_info", []):
            if not address["local"].startswith("127."):
                return str(address["local"])
    pytest.skip("no non-loopback IPv4 address here to send through a proxy")


@pytest.fixture
def forward_proxy() -> Iterator[ForwardProxy]:
    proxy = ForwardProxy()
    yield proxy
    proxy.close()


def test_plain_http_goes_through_http_proxy_with_its_credentials(
    serve: Any, forward_proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = _outside_address()
    server = Server(lambda h, body: reply(h, 200, b"via " + h.path.encode()), address=outside)
    try:
        proxy_host = forward_proxy.url.removeprefix("http://")
        monkeypatch.setenv("HTTP_PROXY", f"http://alice:s%3Acret@{proxy_host}")
        response = HTTPTransport(verify=False).request("GET", server.url("/v2/x"), {})
        assert response.status == 200 and response.read() == b"via /v2/x"
        token = base64.b64encode(b"alice:s:cret").decode()
        assert forward_proxy.seen == [("GET", server.url("/v2/x"), f"Basic {token}")]
        assert "Proxy-Authorization" not in server.requests[0][2]

        monkeypatch.setenv("NO_PROXY", outside)
        response = HTTPTransport(verify=False).request("GET", server.url("/direct"), {})
        assert response.read() == b"via /direct" and len(forward_proxy.seen) == 1
    finally:
        server.close()


def test_https_goes_through_a_connect_tunnel(
    forward_proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    outside = _outside_address()
    self_signed(tmp_path, outside, cert="cert.pem")
    server = Server(lambda h, body: reply(h, 200, b"tunnelled"), address=outside, tls=tmp_path)
    try:
        monkeypatch.setenv("HTTPS_PROXY", forward_proxy.url)
        transport = HTTPTransport(verify=False)
        for _ in range(3):  # one tunnel, kept alive
            assert transport.request("GET", server.url("/v2/"), {}).read() == b"tunnelled"
        assert forward_proxy.seen == [("CONNECT", f"{outside}:{server.port}", None)]
        assert server.connections == 1

        forward_proxy.refuse = True
        with pytest.raises(ConnectionFailed, match="the proxy refused the tunnel: 407 Proxy Auth"):
            HTTPTransport(verify=False).request("GET", server.url("/v2/"), {})
        assert len(forward_proxy.seen) == 2  # refused at once, not retried
    finally:
        server.close()
