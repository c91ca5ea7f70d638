"""Logging: the ``registryd`` logger on stderr, text or JSON lines, plus the access log.

The access log is one line per request, written after the response went out::

    text: 127.0.0.1 alice "PUT /v2/app/manifests/1" 201 in=0 out=0 3.1ms
    json: {"time": "...", "remote": "127.0.0.1", "account": "alice", "method": "PUT",
           "path": "/v2/app/manifests/1", "status": 201, "bytes_in": 0, "bytes_out": 0,
           "duration_ms": 3.1}
"""

from __future__ import annotations

import json
import logging
import sys
import time

ACCESS = "registryd.access"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        document = {
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if isinstance(fields, dict):
            document.update(fields)
        else:
            document["message"] = record.getMessage()
        if record.exc_info:
            document["error"] = self.formatException(record.exc_info)
        return json.dumps(document)


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("registryd")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # log.access decides about access lines, not log.level.
    logging.getLogger(ACCESS).setLevel(logging.INFO)


class AccessLog:
    def __init__(self, fmt: str) -> None:
        self.json = fmt == "json"
        self.logger = logging.getLogger(ACCESS)

    def request(
        self,
        *,
        remote: str,
        account: str | None,
        method: str,
        path: str,
        status: int,
        bytes_in: int,
        bytes_out: int,
        seconds: float,
    ) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        duration = round(seconds * 1000, 1)
        if self.json:
            fields = {
                "remote": remote,
                "account": account,
                "method": method,
                "path": path,
                "status": status,
                "bytes_in": bytes_in,
                "bytes_out": bytes_out,
                "duration_ms": duration,
            }
            self.logger.info("access", extra={"fields": fields})
            return
        self.logger.info(
            '%s %s "%s %s" %d in=%d out=%d %.1fms',
            remote,
            account or "-",
            method,
            path,
            status,
            bytes_in,
            bytes_out,
            duration,
        )


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1000):03d}Z"
