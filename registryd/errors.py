"""registryd's errors, a subtree of pyrun's one exception tree (runtime/errors.py)::

    PyrunError
    └── RegistrydError            exit 1   the server cannot start or gc cannot run
        └── ApiError                       one request refused: HTTP status + spec error code

An ``ApiError`` never leaves the server: ``registryd.http`` turns it into the distribution-spec's
JSON body ``{"errors": [{"code", "message", "detail"}]}``. The codes are the spec's table
(code-1 … code-14); UNSUPPORTED also covers what the spec leaves to the registry (read-only
mode, unknown endpoints, bad pagination numbers).
"""

from __future__ import annotations

import json

from runtime.errors import PyrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class RegistrydError(PyrunError):
    """The registry cannot start (config, address, TLS files) or a maintenance verb failed."""


# code -> default status, as distribution answers them.
STATUS = {
    "BLOB_UNKNOWN": 404,
    "BLOB_UPLOAD_INVALID": 400,
    "BLOB_UPLOAD_UNKNOWN": 404,
    "DIGEST_INVALID": 400,
    "MANIFEST_BLOB_UNKNOWN": 400,
    "MANIFEST_INVALID": 400,
    "MANIFEST_UNKNOWN": 404,
    "NAME_INVALID": 400,
    "NAME_UNKNOWN": 404,
    "SIZE_INVALID": 400,
    "UNAUTHORIZED": 401,
    "DENIED": 403,
    "UNSUPPORTED": 405,
    "TOOMANYREQUESTS": 429,
}


class ApiError(RegistrydError):
    """One request refused; ``headers`` go out with the error (Range, WWW-Authenticate)."""

    def __init__(
        self,
        code: str,
        message: str,
        detail: Any = None,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail
        self.status = status if status is not None else STATUS.get(code, 400)
        self.headers = headers or {}

    def body(self) -> bytes:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return json.dumps({"errors": [error]}).encode()


class ManifestBlobsUnknown(ApiError):
    """A manifest names blobs or manifests this repository does not hold: one error each."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(
            "MANIFEST_BLOB_UNKNOWN",
            "manifest references a manifest or blob unknown to registry",
            {"digests": missing},
        )
        self.missing = missing

    def body(self) -> bytes:
        errors = [
            {"code": self.code, "message": self.message, "detail": {"digest": digest}}
            for digest in self.missing
        ]
        return json.dumps({"errors": errors}).encode()
