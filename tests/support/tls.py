"""Throw-away TLS material for the tests: ``self_signed(directory, ip)`` writes a P-256
certificate for ``ip`` that is its own CA (``cert``, default ca.crt) and its key (``key``,
default key.pem), with openssl."""

from __future__ import annotations

import subprocess
from pathlib import Path


def self_signed(
    directory: Path, ip: str = "127.0.0.1", cert: str = "ca.crt", key: str = "key.pem"
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    request = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    identity = ["-nodes", "-days", "2", "-subj", f"/CN={ip}", "-addext", f"subjectAltName=IP:{ip}"]
    files = ["-keyout", str(directory / key), "-out", str(directory / cert)]
    subprocess.run(["openssl", *request, *identity, *files], check=True, capture_output=True)
