"""``registryd serve``: assemble the registry from a validated config and run it until
SIGTERM/SIGINT.

Start-up order keeps "nothing started" true for every configuration error: the config was
validated by the caller, then TLS files are loaded, the socket is bound and auth is built
(it needs the bound address for its default token realm) — only then is the storage root
created and the first request accepted. On a signal the accept loop stops, requests in flight
finish (up to ``DRAIN_SECONDS``), and the process exits 0; upload sessions stay on disk.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from registryd.errors import RegistrydError

if TYPE_CHECKING:
    import ssl

    from registryd.auth import Authorizer, TokenEndpoint
    from registryd.config import Config

log = logging.getLogger("registryd")

DRAIN_SECONDS = 30.0
JANITOR_SECONDS = 60.0


def run(config: Config) -> int:
    from registryd import accesslog
    from registryd.accesslog import AccessLog
    from registryd.app import Registry
    from registryd.metrics import Metrics
    from registryd.server import RegistryServer
    from registryd.storage import Storage
    from registryd.uploads import Uploads

    accesslog.configure(config.log_level, config.log_format)
    context = tls_context(config) if config.tls else None
    storage = Storage(config.root)
    uploads = Uploads(storage, config.upload_expiry, config.max_request_body)
    metrics = Metrics()
    registry = Registry(config, storage, uploads, metrics)
    if config.proxy is not None:
        from registryd.proxy import Cache  # imports pyrun's registry client: proxy mode only

        registry.cache = Cache(config.proxy, storage, metrics)
    access = AccessLog(config.log_format) if config.log_access else None
    try:
        server = RegistryServer((config.host, config.port), registry, access, context)
    except OSError as err:
        where = f"{config.host}:{config.port}"
        raise RegistrydError(f"cannot listen on {where}: {_reason(err)}") from None
    try:
        host, port = server.server_address[:2]
        url = config.base_url or f"{'https' if context else 'http'}://{_url_host(str(host))}:{port}"
        registry.authorizer, registry.token_endpoint = build_auth(config, url)
        try:
            storage.create()
            uploads.expire()
        except OSError as err:
            raise RegistrydError(f"storage root {config.root}: {_reason(err)}") from None
    except BaseException:
        server.server_close()
        raise
    if config.proxy is not None:
        proxy = config.proxy
        log.info("pull-through cache of %s (tags trusted %d s)", proxy.remoteurl, proxy.ttl)
    return _serve(server, uploads, url)


def _serve(server: Any, uploads: Any, url: str) -> int:
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    accept = threading.Thread(target=server.serve_forever, args=(0.25,), name="accept")
    accept.start()
    janitor = threading.Thread(target=_janitor, args=(uploads, stop), name="janitor", daemon=True)
    janitor.start()
    # The one line a supervisor (or a test) waits for; the port is the real one (listen :0).
    print(f"registryd: listening on {url}", file=sys.stderr, flush=True)
    log.info("serving %s (storage %s)", url, uploads.storage.root)
    while not stop.wait(1.0):
        pass
    log.info("stopping: finishing requests in flight")
    server.draining = True
    server.shutdown()
    accept.join()
    if not server.wait_idle(DRAIN_SECONDS):
        log.warning("requests still running after %.0f s; stopping anyway", DRAIN_SECONDS)
    server.server_close()
    log.info("stopped")
    return 0


def _janitor(uploads: Any, stop: threading.Event) -> None:
    interval = min(JANITOR_SECONDS, max(1.0, uploads.expiry / 2))
    while not stop.wait(interval):
        try:
            for upload_id in uploads.expire():
                log.info("upload %s expired", upload_id)
        except OSError as err:
            log.warning("expiring uploads: %s", err)


def build_auth(config: Config, base_url: str) -> tuple[Authorizer | None, TokenEndpoint | None]:
    """The authorizer and token endpoint, or (None, None) for an open registry."""
    if not config.auth:
        return None, None
    try:
        from registryd.auth import build_authorizer, build_token_endpoint
    except ImportError as err:
        raise RegistrydError(
            f"{config.source}: auth: auth support not available ({err}); refusing to serve"
            " without the configured authentication"
        ) from None
    authorizer = build_authorizer(config.auth, config.root, base_url)
    endpoint = build_token_endpoint(config.auth, config.root, base_url)
    if authorizer is None:
        raise RegistrydError(f"{config.source}: auth: no authentication method configured")
    return authorizer, endpoint


def tls_context(config: Config) -> ssl.SSLContext:
    import ssl

    assert config.tls_certificate is not None and config.tls_key is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls_certificate, config.tls_key)
    except (OSError, ssl.SSLError) as err:
        raise RegistrydError(
            f"tls: cannot load {config.tls_certificate} / {config.tls_key}: {_reason(err)}"
        ) from None
    return context


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _reason(err: Exception) -> str:
    if isinstance(err, OSError) and err.errno:
        return os.strerror(err.errno).lower() if err.errno != errno.EADDRINUSE else "address in use"
    return str(err)
