"""Where snapshots live under the store, and the lock and metadata files that describe them.

::

    <root>/snapshots/lock                  flock: making, releasing and collecting snapshots
    <root>/snapshots/overlay.json          the cached overlay probe (per kernel release)
    <root>/snapshots/tmp/<random>/         a layer snapshot being written (never used as is)
    <root>/snapshots/layers/<chain-hex>/   a finished layer snapshot (renamed here whole):
        fs/                                the layer's files, overlay whiteouts included
        meta.json                          {"chainID", "diffID", "link", "size"} (size:
                                           uncompressed bytes, for a later unpack's --limit)
    <root>/snapshots/l/<link>              -> ../layers/<chain-hex>/fs: short lowerdir names
    <root>/snapshots/bundles/<id>/         one bundle's snapshot:
        meta.json                          {"id", "kind", "bundle", "rootfs", "image", "chain"}
        upper/ work/                       overlay: the bundle's own changes
        base.json                          vfs: the tree as unpacked, to diff against at commit

Imports only os and the C JSON codec: ``pyrun delete`` reaches this module.
"""

from __future__ import annotations

import os

from imagetools.atomic import write_atomic
from imagetools.errors import SnapshotError
from runtime import jsonfast

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, BinaryIO, Protocol

    class BlobStore(Protocol):
        """What snapshots need of imagetools.store.Store (a light stand-in will do)."""

        root: str

        def blob_size(self, digest: str) -> int: ...

        def open_blob(self, digest: str, size: int | None = None) -> BinaryIO: ...

    class LayerLike(Protocol):
        digest: str
        media_type: str
        size: int
        diff_id: str

    class ImageLike(Protocol):
        """imagetools.unpack.ResolvedImage, as far as snapshots read it."""

        name: str | None
        manifest_digest: str
        manifest: dict[str, Any]
        config_digest: str
        config: dict[str, Any]

        @property
        def layers(self) -> Sequence[LayerLike]: ...


_HEX = frozenset("0123456789abcdef")


def valid_id(snapshot_id: str) -> bool:
    """A bundle snapshot id as we make them: 16 to 64 lowercase hex digits, nothing else."""
    return 16 <= len(snapshot_id) <= 64 and set(snapshot_id) <= _HEX


def new_id() -> str:
    return os.urandom(8).hex()


class Layout:
    def __init__(self, store_root: str) -> None:
        self.store_root = store_root.rstrip("/") or "/"
        self.dir = f"{self.store_root}/snapshots"
        self.layers = f"{self.dir}/layers"
        self.links = f"{self.dir}/l"
        self.bundles = f"{self.dir}/bundles"
        self.tmp = f"{self.dir}/tmp"

    def layer_dir(self, chain_id: str) -> str:
        return f"{self.layers}/{chain_id.partition(':')[2]}"

    def bundle_dir(self, snapshot_id: str) -> str:
        if not valid_id(snapshot_id):
            raise SnapshotError(f"invalid snapshot id {snapshot_id!r}")
        return f"{self.bundles}/{snapshot_id}"

    def lock(self, exclusive: bool = True) -> Lock:
        os.makedirs(self.dir, exist_ok=True)
        return Lock(f"{self.dir}/lock", exclusive)


class Lock:
    """flock on the snapshots' lock file; one per operation (flock is per open file, so a
    second Lock in the same process waits for the first: never nest them)."""

    def __init__(self, path: str, exclusive: bool) -> None:
        self.path = path
        self.exclusive = exclusive
        self.fd = -1

    def __enter__(self) -> Lock:
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH)
        return self

    def __exit__(self, *_exc: object) -> None:
        os.close(self.fd)
        self.fd = -1


def read_json(path: str) -> Any:
    """The document at ``path``; None when it is missing or unreadable (a half-made or
    foreign snapshot is treated as absent, never trusted)."""
    try:
        with open(path, "rb") as handle:
            return jsonfast.loads(handle.read())
    except (OSError, ValueError):
        return None


def write_json(path: str, value: Any, pretty: bool = True, durable: bool = True) -> None:
    """Atomically: temp file, fsync (unless not ``durable``), rename: a killed writer leaves
    the old file or the new one, and with fsync so does a power cut."""
    data = jsonfast.dumps(value, indent=1 if pretty else None).encode()
    write_atomic(path, data, 0o600, durable=durable)
