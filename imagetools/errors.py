"""The image errors, a subtree of pyrun's one exception tree (runtime/errors.py)::

PyrunError
└── ImageError                    exit 1
    ├── ReferenceError_           a malformed image reference
    ├── StoreError                the store itself (bad digest, I/O)
    │   └── ImageNotFound         no such name or blob in the store
    ├── BlobMismatch              content does not match its digest or size
    ├── ArchiveError              an image archive (OCI layout, docker-archive) that is malformed
    ├── RegistryError             the registry refused or failed (HTTP status, its message)
    │   └── AuthError             credentials missing or refused
    ├── UnpackError               a layer that cannot be applied (unsafe, malformed, too big)
    └── SnapshotError             a snapshot that cannot be made, used, committed or released
"""

from __future__ import annotations

from runtime.errors import PyrunError


class ImageError(PyrunError):
    """Anything about images, registries and the store."""


class InvalidReference(ImageError):
    """A malformed image reference."""


class StoreError(ImageError):
    """The image store: a bad digest, an I/O failure."""


class ImageNotFound(StoreError):
    """No such image name, digest or blob in the store."""


class BlobMismatch(ImageError):
    """Content that does not match its digest or announced size."""


class ArchiveError(ImageError):
    """An image archive (OCI layout, docker-archive) that is malformed or incomplete."""


class RegistryError(ImageError):
    """The registry answered with an error, or could not be reached."""


class AuthError(RegistryError):
    """Credentials are missing or were refused."""


class UnpackError(ImageError):
    """A layer that cannot be applied: unsafe paths, malformed archives, size limits."""


class SnapshotError(ImageError):
    """A layer or bundle snapshot that cannot be made, mounted, committed or released."""
