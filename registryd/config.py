"""The registryd config: YAML (or JSON) → JSON Schema → typed ``Config`` with the defaults.

The schema is ``schema/registryd-config.schema.json`` (installed as registryd/schemas/...).
Command-line flags are merged into the document BEFORE validation, so a bad ``--listen`` is
reported like a bad ``listen:``. Every violation is reported at once, each with its JSON path
and YAML line, through the runtime's own report (runtime/spec/report.py); nothing starts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import SpecError

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "registryd-config.schema.json"
DEFAULT_LISTEN = "127.0.0.1:5000"
DEFAULT_ROOT = "/var/lib/registryd"
MANIFEST_BYTES = 4 * 1024 * 1024  # distribution's default limit
UPLOAD_EXPIRY = 24 * 3600
# A cached tag is trusted this long: long enough that a burst of pulls asks the upstream once,
# short enough that a moved tag (":latest") shows up within minutes. A refresh is one HEAD,
# which Docker Hub does not count against its pull rate limit.
PROXY_TTL = 300


@dataclass(frozen=True)
class ProxyConfig:
    """The upstream of pull-through cache mode (the ``proxy:`` section)."""

    remoteurl: str  # scheme://host[:port], no trailing slash
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ttl: int = PROXY_TTL
    tls_verify: bool = True

    @property
    def host(self) -> str:
        return self.remoteurl.split("://", 1)[1]

    @property
    def https(self) -> bool:
        return self.remoteurl.startswith("https://")


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 5000
    root: str = DEFAULT_ROOT
    base_url: str | None = None
    tls_certificate: str | None = None
    tls_key: str | None = None
    auth: dict[str, Any] | None = None
    readonly: bool = False
    manifest_bytes: int = MANIFEST_BYTES
    upload_expiry: int = UPLOAD_EXPIRY
    max_request_body: int | None = None
    log_level: str = "info"
    log_format: str = "text"
    log_access: bool = True
    proxy: ProxyConfig | None = None
    source: str = "(defaults)"

    @property
    def tls(self) -> bool:
        return self.tls_certificate is not None


def load_schema() -> dict[str, Any]:
    with open(SCHEMA_PATH, "rb") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


def load_config(
    path: str | None,
    *,
    listen: str | None = None,
    root: str | None = None,
    proxy: str | None = None,
) -> Config:
    """The config of ``path`` (None: the embedded defaults) with the flags applied.

    Raises SpecError listing every problem."""
    from runtime.spec.document import Document

    document = Document({}, "(defaults)") if path is None else _read(path)
    data = document.data if document.data is not None else {}
    if isinstance(data, dict):
        data = dict(data)
        if listen is not None:
            data["listen"] = listen
        if root is not None:
            data["root"] = root
        if proxy is not None:
            section = data.get("proxy")
            data["proxy"] = {**(section if isinstance(section, dict) else {}), "remoteurl": proxy}
        document.data = data
    problems = validate(document)
    if problems:
        raise SpecError(document.source, problems)
    return _typed(data, document.source)


def validate(document: Any) -> list[str]:
    """Every problem of ``document`` (a runtime.spec Document), rendered with paths/lines."""
    from runtime.spec.report import render_all, schema_problems

    problems = schema_problems(document, load_schema())
    rendered = render_all(document, problems)
    if not problems and isinstance(document.data, dict):
        rendered.extend(_semantic(document.data))
    return rendered


def _read(path: str) -> Any:
    from runtime.spec.document import decode

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise SpecError(
            path, [f"(root): cannot read: {os.strerror(err.errno or 0).lower()}"]
        ) from None
    # YAML is a superset of JSON: anything not named .json is read as YAML (for line numbers).
    name = path if path.endswith((".json", ".yaml", ".yml")) else path + ".yaml"
    try:
        document = decode(data, name)
    except SpecError as err:
        raise SpecError(path, err.problems) from None
    document.source = path
    return document


def _semantic(data: dict[str, Any]) -> list[str]:
    problems = []
    _host, port = split_listen(data.get("listen", DEFAULT_LISTEN))
    if port > 65535:
        problems.append(f"listen: port {port} is out of range")
    return problems


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def _typed(data: dict[str, Any], source: str) -> Config:
    host, port = split_listen(data.get("listen", DEFAULT_LISTEN))
    tls = data.get("tls") or {}
    limits = data.get("limits") or {}
    log = data.get("log") or {}
    return Config(
        host=host,
        port=port,
        root=os.path.abspath(data.get("root", DEFAULT_ROOT)),
        base_url=data.get("base_url"),
        tls_certificate=tls.get("certificate"),
        tls_key=tls.get("key"),
        auth=data.get("auth"),
        readonly=bool(data.get("readonly", False)),
        manifest_bytes=int(limits.get("manifest_bytes", MANIFEST_BYTES)),
        upload_expiry=int(limits.get("upload_expiry", UPLOAD_EXPIRY)),
        max_request_body=limits.get("max_request_body"),
        log_level=log.get("level", "info"),
        log_format=log.get("format", "text"),
        log_access=bool(log.get("access", True)),
        proxy=_proxy(data.get("proxy")),
        source=source,
    )


def _proxy(section: dict[str, Any] | None) -> ProxyConfig | None:
    if section is None:
        return None
    return ProxyConfig(
        remoteurl=str(section["remoteurl"]).rstrip("/"),
        username=section.get("username"),
        password=section.get("password"),
        ttl=int(section.get("ttl", PROXY_TTL)),
        tls_verify=bool(section.get("tls_verify", True)),
    )
