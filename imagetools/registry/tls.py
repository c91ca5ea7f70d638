"""TLS settings for one registry, found the way docker, podman and skopeo find them.

A directory of files per registry: ``/etc/pyrun/certs.d/<host[:port]>/``, then the same under
``/etc/containers/certs.d`` and ``/etc/docker/certs.d``; or only the directory the user names
(``--cert-dir``, as skopeo and podman take it). In it:

- ``*.crt``: CA certificates trusted for this registry, besides the system's;
- ``NAME.cert`` with ``NAME.key``: a client certificate and its key (mutual TLS); one without
  the other is an error, as in containers/image.

With ``--tls-verify=false`` nothing is verified (and the system's CAs are not even loaded,
~30 ms), but a client certificate is still presented.
"""

from __future__ import annotations

import os
import ssl

from imagetools.errors import RegistryError

CERT_DIRS = ("/etc/pyrun/certs.d", "/etc/containers/certs.d", "/etc/docker/certs.d")


def cert_dirs(host: str, cert_dir: str | None = None) -> list[str]:
    """The directories whose files apply to ``host`` (host[:port]), most specific first."""
    if cert_dir is not None:
        return [cert_dir]
    return [f"{base}/{host}" for base in CERT_DIRS] if host else []


def context_for(host: str, verify: bool, cert_dir: str | None = None) -> ssl.SSLContext:
    """The SSL context for connections to ``host`` (and where it redirects to)."""
    if verify:
        context = ssl.create_default_context()
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    for directory in cert_dirs(host, cert_dir):
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            if cert_dir is not None:
                raise RegistryError(f"--cert-dir {cert_dir}: no such directory") from None
            continue
        except OSError as err:
            raise RegistryError(f"{directory}: cannot read: {err.strerror or err}") from None
        for name in names:
            path = os.path.join(directory, name)
            try:
                if name.endswith(".crt") and verify:
                    context.load_verify_locations(path)
                elif name.endswith(".cert"):
                    context.load_cert_chain(path, _pair(path, ".cert", ".key", "its key"))
                elif name.endswith(".key"):
                    _pair(path, ".key", ".cert", "its client certificate")
            except (ssl.SSLError, OSError, ValueError) as err:
                reason = str(err).split(" (_ssl.c:", 1)[0]
                raise RegistryError(f"{path}: not a usable certificate or key: {reason}") from None
    return context


def _pair(path: str, suffix: str, other: str, what: str) -> str:
    """NAME.cert needs NAME.key and the other way round."""
    partner = path[: -len(suffix)] + other
    if not os.path.exists(partner):
        raise RegistryError(f"{path}: found without {what} {partner}")
    return partner
