"""``GET /metrics`` in the Prometheus text exposition format (version 0.0.4).

Hand-written: four counters and three gauges do not justify prometheus_client's registry,
collectors and its import cost. Counters are updated under one lock per request (a few
hundred ns); the store gauges (blob count and bytes) walk the blob directory at most once per
``STORE_TTL`` seconds, so scraping a big store often stays cheap.
"""

from __future__ import annotations

import os
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from registryd.storage import Storage
    from registryd.uploads import Uploads

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STORE_TTL = 10.0


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}
        self.bytes_in = 0
        self.bytes_out = 0
        self.in_flight = 0
        self.cache: dict[tuple[str, str], int] = {}  # pull-through cache (kind, result)
        self._store: tuple[float, int, int] = (0.0, 0, 0)

    def started(self) -> None:
        with self._lock:
            self.in_flight += 1

    def finished(self, method: str, status: int, bytes_in: int, bytes_out: int) -> None:
        key = (method, status)
        with self._lock:
            self.in_flight -= 1
            self.requests[key] = self.requests.get(key, 0) + 1
            self.bytes_in += bytes_in
            self.bytes_out += bytes_out

    def cached(self, kind: str, result: str) -> None:
        """A pull-through cache lookup: kind manifest|blob, result hit|miss|stale."""
        key = (kind, result)
        with self._lock:
            self.cache[key] = self.cache.get(key, 0) + 1

    def render(self, storage: Storage, uploads: Uploads) -> bytes:
        blobs, blob_bytes = self._store_sizes(storage)
        with self._lock:
            requests = sorted(self.requests.items())
            bytes_in, bytes_out, in_flight = self.bytes_in, self.bytes_out, self.in_flight
            cache = sorted(self.cache.items())
        lines = [
            "# HELP registryd_http_requests_total HTTP requests answered, by method and status.",
            "# TYPE registryd_http_requests_total counter",
        ]
        for (method, status), count in requests:
            lines.append(
                f'registryd_http_requests_total{{method="{method}",status="{status}"}} {count}'
            )
        lines += [
            "# HELP registryd_http_request_bytes_total Request body bytes received.",
            "# TYPE registryd_http_request_bytes_total counter",
            f"registryd_http_request_bytes_total {bytes_in}",
            "# HELP registryd_http_response_bytes_total Response body bytes sent.",
            "# TYPE registryd_http_response_bytes_total counter",
            f"registryd_http_response_bytes_total {bytes_out}",
            "# HELP registryd_http_requests_in_flight Requests being served now.",
            "# TYPE registryd_http_requests_in_flight gauge",
            f"registryd_http_requests_in_flight {in_flight}",
            "# HELP registryd_uploads_in_progress Upload sessions on disk (open or abandoned).",
            "# TYPE registryd_uploads_in_progress gauge",
            f"registryd_uploads_in_progress {uploads.count()}",
            "# HELP registryd_uploads_receiving Upload bodies being received now.",
            "# TYPE registryd_uploads_receiving gauge",
            f"registryd_uploads_receiving {uploads.active}",
            "# HELP registryd_blobs Blobs in the store.",
            "# TYPE registryd_blobs gauge",
            f"registryd_blobs {blobs}",
            "# HELP registryd_blob_bytes Bytes of all blobs in the store.",
            "# TYPE registryd_blob_bytes gauge",
            f"registryd_blob_bytes {blob_bytes}",
        ]
        if cache:
            lines += [
                "# HELP registryd_proxy_lookups_total Pull-through cache lookups, by kind and"
                " result (stale: the upstream failed, the cached tag was served).",
                "# TYPE registryd_proxy_lookups_total counter",
            ]
            for (kind, result), count in cache:
                lines.append(
                    f'registryd_proxy_lookups_total{{kind="{kind}",result="{result}"}} {count}'
                )
        return ("\n".join(lines) + "\n").encode()

    def _store_sizes(self, storage: Storage) -> tuple[int, int]:
        when, count, total = self._store
        now = time.monotonic()
        if now - when < STORE_TTL and when:
            return count, total
        count = total = 0
        for _digest, path in storage.iter_blobs():
            try:
                total += os.stat(path).st_size
                count += 1
            except FileNotFoundError:
                continue
        self._store = (now, count, total)
        return count, total
