"""Applying one layer (a tar changeset, OCI image-spec layer.md) to a directory, confined to it.

``apply_layer(root, stream, media_type)`` decompresses (gzip, zstd or none), reads the tar with
its own reader (ustar, GNU long names, PAX records incl. SCHILY/LIBARCHIVE xattrs) and applies
each entry with containerd's and umoci's semantics:

* regular files, directories (an existing directory only takes the new attributes), symlinks
  (created as they are: lchown and lutimes, never chmod), hardlinks (to an earlier entry of
  this layer or a file of a lower layer; a target that does not exist yet is an error),
  character/block devices and FIFOs (mknod; rootless: an empty placeholder file and a warning);
* ownership (numeric uid/gid; names are ignored), then the mode incl. setuid/setgid/sticky
  (chown clears setuid, so chown comes first), then xattrs (chown clears security.capability),
  then times; directories' times are set last, after their children;
* whiteouts: ``.wh.NAME`` removes NAME of a LOWER layer, ``.wh..wh..opq`` removes every lower
  child of its directory (the directory stays); an entry this layer wrote is never removed,
  whatever the order. A bare ``.wh.`` (or ``.wh..`` / ``.wh...``) is an error; other
  ``.wh..wh.*`` AUFS metadata is skipped. ``whiteouts="overlay"`` (the overlay snapshotter: the
  layer alone in an empty directory) writes them as overlayfs does instead: a 0/0 character
  device for ``.wh.NAME``, the xattr ``trusted.overlay.opaque=y`` (``user.`` when rootless) on
  the directory for the opaque marker;
* duplicate paths in one layer: the last entry wins (an earlier file is replaced, a directory
  takes the later attributes);
* xattrs an image tries to set in the ``trusted.overlay.`` / ``user.overlay.`` namespaces are
  dropped with a warning (they would steer an overlay mount).

Confinement (CVE-2014-6407, CVE-2014-9356, CVE-2021-29136, CVE-2021-32760, CVE-2018-15664)::

    names are cleaned lexically; one that climbs above the root ("../x") is refused, a leading
    "/" means the root. Every parent directory is reached by ``_Root.walk``: one openat with
    O_PATH|O_NOFOLLOW per component from an fd of the root, symlinks (absolute ones too) read
    with readlinkat and followed as if the root were "/" (".." never climbs above it; the
    kernel never sees a ".."). The LAST component is never followed: every create, remove,
    chown, chmod, setxattr and utime acts on (parent fd, name) with AT_SYMLINK_NOFOLLOW or on an
    fd the entry itself opened with O_NOFOLLOW|O_EXCL. Hardlink targets are resolved the same
    way and linked with linkat without AT_SYMLINK_FOLLOW. An entry that would replace the root
    itself is refused.

The diff_id (sha256 of the uncompressed tar, trailing padding included) and the blob digest
(of the compressed bytes) are computed while streaming and checked when the caller gives them.
A size limit on the uncompressed stream and on names stops decompression bombs.
"""

from __future__ import annotations

import errno
import os
import stat
import zlib

from imagetools.errors import UnpackError

# base64, hashlib, shutil, urllib.parse, dataclasses: imported where used (together ~35 ms),
# and `pyrun image unpack` of an already-snapshotted image (< 50 ms, issue 4) reaches this
# module only for read_file_in_root (imagetools.convert's /etc/passwd lookup).

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any, BinaryIO

DEFAULT_LIMIT = 16 << 30  # uncompressed bytes of one layer
MAX_NAME = 4096  # PATH_MAX: the longest path or link target an entry may carry
MAX_PAX = 1 << 20  # the largest PAX extended header (xattrs included)
MAX_SYMLINKS = 40  # the kernel's MAXSYMLINKS
_CHUNK = 1 << 20  # decompressed bytes per step
_IN_CHUNK = 256 << 10  # compressed bytes read per step
_FD_CACHE = 512  # directory fds kept open at most

WHITEOUT_PREFIX = b".wh."
WHITEOUT_META = b".wh..wh."
WHITEOUT_OPAQUE = b".wh..wh..opq"

_GZIP = (
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
)
_ZSTD = (
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
)
_PLAIN = (
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.docker.image.rootfs.diff.tar",
)
MEDIA_TYPES = _GZIP + _ZSTD + _PLAIN

_O_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_NEWFILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_ZERO_BLOCK = bytes(512)

# tar type flags
_REG, _AREG, _CONT = b"0", b"\0", b"7"
_LNK, _SYM, _CHR, _BLK, _DIR, _FIFO = b"1", b"2", b"3", b"4", b"5", b"6"
_PAX, _PAX_GLOBAL, _GNU_LONGNAME, _GNU_LONGLINK = b"x", b"g", b"L", b"K"
_FILE_TYPES = (_REG, _AREG, _CONT)


class LayerResult:
    """What applying a layer found (a plain class: dataclasses imports inspect, ~15 ms)."""

    __slots__ = ("diff_id", "digest", "entries", "size", "warnings")

    def __init__(
        self,
        diff_id: str,  # "sha256:..." of the uncompressed tar
        entries: int,  # tar entries applied (whiteouts included, PAX/GNU headers not)
        size: int,  # uncompressed bytes read
        digest: str | None = None,  # of the compressed bytes, when the caller named one
        warnings: list[str] | None = None,
    ) -> None:
        self.diff_id = diff_id
        self.entries = entries
        self.size = size
        self.digest = digest
        self.warnings = warnings if warnings is not None else []

    def __repr__(self) -> str:
        return (
            f"LayerResult(diff_id={self.diff_id!r}, entries={self.entries}, size={self.size},"
            f" digest={self.digest!r}, warnings={self.warnings!r})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LayerResult) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__
        )


def apply_layer(
    root: str,
    stream: BinaryIO,
    media_type: str,
    *,
    whiteouts: str = "delete",
    rootless: bool = False,
    limit: int = DEFAULT_LIMIT,
    expected_diff_id: str | None = None,
    digest: str | None = None,
    label: str | None = None,
    lowers: Sequence[str] = (),
) -> LayerResult:
    """Apply the layer read from ``stream`` (a blob of ``media_type``) to the directory
    ``root``. ``expected_diff_id``: UnpackError when the uncompressed tar's sha256 differs.
    ``digest``: the blob's digest, named in errors and checked against the compressed bytes.
    ``label`` names the layer in errors when there is no digest. ``lowers`` (overlay mode):
    the lower layers' trees, topmost first; a directory this layer needs but carries no entry
    for is made with the owner, mode and times it has in the topmost lower holding it (what
    overlayfs's copy-up keeps), not 0755 root and now. Raises UnpackError naming the layer and
    the entry; the tree may then be half-applied (the caller throws it away)."""
    if whiteouts not in ("delete", "overlay"):
        raise ValueError(f"whiteouts must be 'delete' or 'overlay', not {whiteouts!r}")
    name = digest or label or "(unnamed)"
    blob_hasher = None
    source: Callable[[int], bytes] = stream.read
    if digest is not None:
        algorithm = digest.partition(":")[0]
        if algorithm not in ("sha256", "sha512"):
            raise UnpackError(f"layer {digest}: unsupported digest algorithm")
        import hashlib

        blob_hasher = hashlib.new(algorithm)
        source = _hashing_reader(stream.read, blob_hasher)
    tree = _Root(root, name)  # first: a bad root fails before the pipeline's thread starts
    try:
        pipe = _Pipeline(source, media_type, name, limit)
    except BaseException:
        tree.close()
        raise
    reader = _TarReader(pipe, limit, name)
    applier = _Applier(tree, reader, name, whiteouts == "overlay", rootless)
    if lowers:
        applier.use_lowers(lowers)
    try:
        applier.run()
        reader.drain()
    finally:
        applier.close()
        pipe.close()
    if digest is not None and blob_hasher is not None:
        actual = f"{digest.partition(':')[0]}:{blob_hasher.hexdigest()}"
        if actual != digest:
            raise UnpackError(f"layer {digest}: the blob's content has digest {actual}")
    diff_id = f"sha256:{pipe.hasher.hexdigest()}"
    if expected_diff_id is not None and diff_id != expected_diff_id:
        raise UnpackError(
            f"layer {name}: uncompressed content has diff_id {diff_id}, the image config"
            f" says {expected_diff_id}"
        )
    return LayerResult(diff_id, applier.entries, pipe.total, digest, applier.warnings)


# -- decompression --------------------------------------------------------------------------


def _hashing_reader(read: Callable[[int], bytes], hasher: Any) -> Callable[[int], bytes]:
    def hashing_read(size: int) -> bytes:
        data = read(size)
        hasher.update(data)
        return data

    return hashing_read


def _decompressed(read: Callable[[int], bytes], media_type: str, name: str) -> Iterator[bytes]:
    if media_type in _GZIP:
        return _gunzip(read, name)
    if media_type in _ZSTD:
        return _unzstd(read, name)
    if media_type in _PLAIN:
        return _plain(read)
    raise UnpackError(f"layer {name}: media type {media_type!r} is not a layer this tool reads")


def _plain(read: Callable[[int], bytes]) -> Iterator[bytes]:
    while True:
        data = read(_CHUNK)
        if not data:
            return
        yield data


def _inflater() -> Any:
    """ISA-L's inflate (the ``isal`` package: ~2.5x zlib's speed, same API), else zlib."""
    try:
        from isal import isal_zlib

        return isal_zlib
    except ImportError:
        return zlib


def _gunzip(read: Callable[[int], bytes], name: str) -> Iterator[bytes]:
    """gzip members one after another (pigz writes several); each step's output is bounded, so
    a bomb never makes a large buffer."""
    inflate = _inflater()
    inflater = inflate.decompressobj(16 + zlib.MAX_WBITS)
    pending = read(_IN_CHUNK)
    if not pending:
        raise UnpackError(f"layer {name}: empty blob (not gzip)")
    while True:
        try:
            out = inflater.decompress(pending, _CHUNK)
        except (zlib.error, inflate.error) as err:
            raise UnpackError(f"layer {name}: corrupt gzip stream ({err})") from None
        if out:
            yield out
        if inflater.eof:
            rest = inflater.unused_data
            while len(rest) < 2:
                more = read(_IN_CHUNK)
                if not more:
                    break
                rest += more
            if not rest:
                return
            if rest[:2] != b"\x1f\x8b":
                raise UnpackError(f"layer {name}: data after the end of the gzip stream")
            inflater = inflate.decompressobj(16 + zlib.MAX_WBITS)
            pending = rest
            continue
        pending = inflater.unconsumed_tail
        if not pending and not out:
            # The inflater has given all it had for this input: read more.
            pending = read(_IN_CHUNK)
            if not pending:
                raise UnpackError(f"layer {name}: truncated gzip stream")


def _unzstd(read: Callable[[int], bytes], name: str) -> Iterator[bytes]:
    from typing import IO, cast

    import zstandard

    class _Source:
        def read(self, size: int = -1) -> bytes:
            return read(size if size > 0 else _IN_CHUNK)

    reader = zstandard.ZstdDecompressor().stream_reader(
        cast(IO[bytes], _Source()), read_size=_IN_CHUNK, read_across_frames=True
    )
    got = False
    while True:
        try:
            out = reader.read(_CHUNK)
        except zstandard.ZstdError as err:
            raise UnpackError(f"layer {name}: corrupt zstd stream ({err})") from None
        if not out:
            if not got:
                raise UnpackError(f"layer {name}: empty or truncated zstd stream")
            return
        got = True
        yield out


# -- the pipeline: read, decompress and hash in a thread -------------------------------------


class _Pipeline:
    """A thread reads the blob, decompresses it and hashes both sides (zlib, zstd and hashlib
    release the GIL) while the caller's thread writes files; up to ``_DEPTH`` chunks wait
    between them. Every decompressed byte is counted against ``limit`` and hashed (the
    diff_id covers what follows the end-of-archive blocks too); at the end the rest of the
    compressed stream is read, so the blob's digest covers all of it."""

    _DEPTH = 8

    def __init__(
        self, read: Callable[[int], bytes], media_type: str, name: str, limit: int
    ) -> None:
        import queue
        import threading

        self._read = read
        self._chunks = _decompressed(read, media_type, name)  # media type checked here
        self.name = name
        self.limit = limit
        self.total = 0
        import hashlib

        self.hasher = hashlib.sha256()
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(self._DEPTH)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._produce, name="layer-pipe", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            for chunk in self._chunks:
                if self._stop.is_set():
                    return
                if not chunk:
                    continue
                self.total += len(chunk)
                if self.total > self.limit:
                    raise UnpackError(
                        f"layer {self.name}: more than {self.limit} bytes uncompressed (the"
                        " limit): refusing a possible decompression bomb"
                    )
                self.hasher.update(chunk)
                self._put(chunk)
            while self._read(_IN_CHUNK) and not self._stop.is_set():
                pass  # bytes past the end of the compressed stream: the blob digest's
            self._put(None)
        except BaseException as err:  # handed to the consumer, raised there
            self._put(err)

    def _put(self, item: bytes | BaseException | None) -> None:
        import queue

        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def next(self) -> bytes | None:
        """The next decompressed chunk, None at the end; the producer's error is raised."""
        if self._done:
            return None
        item = self._queue.get()
        if item is None:
            self._done = True
            return None
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return item

    def close(self) -> None:
        import queue

        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()


# -- the tar reader --------------------------------------------------------------------------


class _TarReader:
    """Sequential reader over the pipeline's chunks."""

    def __init__(self, pipe: _Pipeline, limit: int, name: str) -> None:
        self._pipe = pipe
        self._buf = b""
        self._pos = 0
        self.total = 0  # bytes handed to this reader so far
        self.limit = limit
        self.name = name

    def _fill(self) -> bool:
        chunk = self._pipe.next()
        if chunk is None:
            return False
        self.total += len(chunk)
        self._buf = chunk
        self._pos = 0
        return True

    def read(self, size: int) -> bytes:
        """Exactly ``size`` bytes (a header, a PAX record, a long name)."""
        end = self._pos + size
        if end <= len(self._buf):
            data = self._buf[self._pos : end]
            self._pos = end
            return data
        parts = [self._buf[self._pos :]]
        need = size - len(parts[0])
        self._pos = len(self._buf)
        while need > 0:
            if not self._fill():
                raise UnpackError(f"layer {self.name}: truncated tar stream")
            take = self._buf[:need]
            parts.append(take)
            self._pos = len(take)
            need -= len(take)
        return b"".join(parts)

    def copy(self, fd: int, size: int) -> None:
        """Write the next ``size`` bytes to ``fd`` in large writes."""
        while size > 0:
            available = len(self._buf) - self._pos
            if available <= 0:
                if not self._fill():
                    raise UnpackError(f"layer {self.name}: truncated tar stream")
                continue
            take = min(available, size)
            view = memoryview(self._buf)[self._pos : self._pos + take]
            while view:
                written = os.write(fd, view)
                view = view[written:]
            self._pos += take
            size -= take

    def skip(self, size: int, *, padding: bool = False) -> None:
        """Skip ``size`` bytes. ``padding``: the stream may end here (Go's archive/tar, and so
        umoci 0.4's insert, accept a last entry without its padding and end blocks; the
        diff_id still covers the stream)."""
        while size > 0:
            available = len(self._buf) - self._pos
            if available <= 0:
                if not self._fill():
                    if padding:
                        return
                    raise UnpackError(f"layer {self.name}: truncated tar stream")
                continue
            take = min(available, size)
            self._pos += take
            size -= take

    def at_end(self) -> bool:
        return self._pos >= len(self._buf) and not self._fill()

    def drain(self) -> None:
        """Read (and hash) what follows the end-of-archive blocks: the diff_id covers it."""
        self._pos = len(self._buf)
        while self._fill():
            pass


def _number(field_: bytes) -> int:
    """A numeric header field: octal text, or GNU base-256 (high bit of the first byte)."""
    try:
        return int(field_.split(b"\0", 1)[0] or b"0", 8)  # the common case, spaces allowed
    except ValueError:
        pass
    if field_ and field_[0] & 0x80:
        value = int.from_bytes(field_[1:], "big")
        if field_[0] == 0xFF:  # negative
            value -= 1 << (8 * (len(field_) - 1))
        elif field_[0] != 0x80:
            value += (field_[0] & 0x7F) << (8 * (len(field_) - 1))
        return value
    text = field_.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    return int(text, 8)


def _cstring(field_: bytes) -> bytes:
    end = field_.find(b"\0")
    return field_ if end < 0 else field_[:end]


class _Entry:
    __slots__ = (
        "atime",
        "devmajor",
        "devminor",
        "gid",
        "linkname",
        "mode",
        "mtime",
        "name",
        "size",
        "type",
        "uid",
        "xattrs",
    )
    name: bytes
    linkname: bytes
    type: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int  # ns
    devmajor: int
    devminor: int

    def __init__(self) -> None:
        self.xattrs: dict[str, bytes] = {}
        self.atime: int | None = None

    def display(self) -> str:
        return os.fsdecode(self.name)


def _parse_pax(data: bytes, name: str) -> dict[bytes, bytes]:
    records: dict[bytes, bytes] = {}
    pos = 0
    size = len(data)
    while pos < size:
        if data[pos] == 0:  # padding
            break
        space = data.find(b" ", pos, pos + 20)
        try:
            length = int(data[pos:space]) if space > pos else 0
        except ValueError:
            length = 0
        end = pos + length
        if length <= space - pos + 1 or end > size or data[end - 1] != 0x0A:
            raise UnpackError(f"layer {name}: malformed PAX extended header")
        key, equals, value = data[space + 1 : end - 1].partition(b"=")
        if not equals:
            raise UnpackError(f"layer {name}: malformed PAX record {key[:40]!r}")
        records[key] = value
        pos = end
    return records


def _nanoseconds(text: bytes, name: str) -> int:
    """A PAX time ("1700000000.123456789", maybe negative) in nanoseconds."""
    try:
        negative = text.startswith(b"-")
        whole, _, fraction = text.lstrip(b"-").partition(b".")
        value = int(whole or b"0") * 1_000_000_000 + int((fraction + b"000000000")[:9] or b"0")
    except ValueError:
        raise UnpackError(f"layer {name}: malformed PAX time {text[:40]!r}") from None
    return -value if negative else value


# -- the confined directory walker -------------------------------------------------------------


class _Root:
    """Directory fds inside ``root``, reached as if ``root`` were ``/``.

    ``dirs`` caches an O_PATH fd per RESOLVED path (real directories only, no symlink in the
    key): a cached path is a chain of real directories from the root, and every removal of a
    directory drops the keys below it."""

    def __init__(self, path: str, name: str) -> None:
        self.name = name
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            raise UnpackError(f"{path}: {(err.strerror or '').lower()}") from None
        self.dirs: dict[bytes, int] = {}
        # Called with (resolved path, O_PATH fd) for each directory walk() creates.
        self.on_create: Callable[[bytes, int], None] | None = None
        # Called with (resolved path, parent fd, name) before walk() creates a directory;
        # True: it made a symlink there instead (to be followed).
        self.on_missing: Callable[[bytes, int, bytes], bool] | None = None

    def close(self) -> None:
        self.forget(b"")
        os.close(self.fd)

    def forget(self, path: bytes) -> None:
        """Drop the cached fds of ``path`` and everything below it (b"": all)."""
        if not path:
            doomed = list(self.dirs)
        else:
            prefix = path + b"/"
            doomed = [k for k in self.dirs if k == path or k.startswith(prefix)]
        for key in doomed:
            os.close(self.dirs.pop(key))

    def fd_of(self, resolved: bytes) -> int:
        if not resolved:
            return self.fd
        fd = self.dirs.get(resolved)
        if fd is None:
            fd, _ = self.walk(resolved.split(b"/"), create=False, entry=resolved)
        return fd

    def walk(
        self, parts: list[bytes], *, create: bool, entry: bytes, mode: int = 0o755
    ) -> tuple[int, bytes]:
        """(fd, resolved path) of the directory ``parts`` names, following symlinks inside
        the root. ``create``: make missing directories (``mode``, owned by the caller);
        otherwise a missing one raises FileNotFoundError."""
        joined = b"/".join(parts)
        cached = self.dirs.get(joined)
        if cached is not None:
            return cached, joined
        if not joined:
            return self.fd, b""
        pending = parts[::-1]
        stack: list[bytes] = []
        current = self.fd
        hops = 0
        while pending:
            part = pending.pop()
            if part in (b"", b"."):
                continue
            if part == b"..":
                if stack:
                    stack.pop()
                    current = self.fd_of(b"/".join(stack))
                continue
            key = b"/".join([*stack, part])
            fd = self.dirs.get(key)
            if fd is None:
                try:
                    fd = os.open(part, _O_PATH_DIR, dir_fd=current)
                except FileNotFoundError:
                    if not create:
                        raise
                    if self.on_missing is not None and self.on_missing(key, current, part):
                        pending.append(part)  # a symlink now: followed on the next turn
                        continue
                    os.mkdir(part, mode, dir_fd=current)
                    fd = os.open(part, _O_PATH_DIR, dir_fd=current)
                    if self.on_create is not None:
                        self.on_create(key, fd)
                except OSError as err:
                    if err.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    info = os.lstat(part, dir_fd=current)
                    if not stat.S_ISLNK(info.st_mode):
                        raise UnpackError(
                            f"layer {self.name}: {os.fsdecode(entry)}: {os.fsdecode(key)} is"
                            " not a directory"
                        ) from None
                    hops += 1
                    if hops > MAX_SYMLINKS:
                        raise UnpackError(
                            f"layer {self.name}: {os.fsdecode(entry)}: too many levels of"
                            " symbolic links"
                        ) from None
                    target = os.readlink(part, dir_fd=current)
                    if target.startswith(b"/"):
                        stack = []
                        current = self.fd
                    pending.extend(reversed(target.split(b"/")))
                    continue
                if len(self.dirs) >= _FD_CACHE:
                    self._evict(stack)
                self.dirs[key] = fd
            stack.append(part)
            current = fd
        return current, b"/".join(stack)

    def keep(self, resolved: bytes, fd: int) -> bool:
        """Cache ``fd`` (a directory opened with O_NOFOLLOW) as ``resolved``; False when the
        caller keeps ownership of it."""
        if resolved in self.dirs or len(self.dirs) >= _FD_CACHE:
            return False
        self.dirs[resolved] = fd
        return True

    def _evict(self, keep: list[bytes]) -> None:
        """Close the cache except the walk in progress (its fds are in use)."""
        keys = {b"/".join(keep[: i + 1]) for i in range(len(keep))}
        for key in [k for k in self.dirs if k not in keys]:
            os.close(self.dirs.pop(key))

    def open_file(self, path: bytes, max_size: int) -> bytes | None:
        """The content of the regular file ``path`` with every symlink (the last one too)
        resolved inside the root; None when it does not exist."""
        parts = [p for p in path.split(b"/") if p]
        for _ in range(MAX_SYMLINKS):
            if not parts:
                return None
            try:
                parent, resolved = self.walk(parts[:-1], create=False, entry=path)
            except (FileNotFoundError, UnpackError):
                return None  # a missing or non-directory parent
            try:
                fd = os.open(
                    parts[-1],
                    os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                    dir_fd=parent,
                )
            except FileNotFoundError:
                return None
            except OSError as err:
                if err.errno == errno.ENOTDIR:
                    return None
                if err.errno != errno.ELOOP:
                    raise
                target = os.readlink(parts[-1], dir_fd=parent)
                base = [] if target.startswith(b"/") else resolved.split(b"/")
                parts = [p for p in [*base, *target.split(b"/")] if p]
                continue
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    return None
                data = os.read(fd, max_size + 1)
            finally:
                os.close(fd)
            if len(data) > max_size:
                raise UnpackError(f"{os.fsdecode(path)} in the image is larger than {max_size}")
            return data
        raise UnpackError(f"{os.fsdecode(path)} in the image: too many levels of symbolic links")


def read_file_in_root(root: str, path: str, max_size: int = 16 << 20) -> bytes | None:
    """Read ``path`` of the tree ``root`` as if ``root`` were ``/`` (symlinks, absolute ones
    too, stay inside: CVE-2024-9676). None when there is no such regular file."""
    tree = _Root(root, root)
    try:
        return tree.open_file(os.fsencode(path), max_size)
    finally:
        tree.close()


def _clean(name: bytes) -> list[bytes] | None:
    """Components of ``name`` with "." and ".." applied lexically; None if it climbs above
    the root. A leading "/" means the root."""
    parts: list[bytes] = []
    for part in name.split(b"/"):
        if part in (b"", b"."):
            continue
        if part == b"..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(part)
    return parts


# -- applying entries ---------------------------------------------------------------------------


class _Applier:
    def __init__(
        self, tree: _Root, reader: _TarReader, name: str, overlay: bool, rootless: bool
    ) -> None:
        self.tree = tree
        self.reader = reader
        self.name = name
        self.overlay = overlay
        self.rootless = rootless
        self.entries = 0
        self.warnings: list[str] = []
        self.created: set[bytes] = set()  # resolved paths this layer wrote
        self.ancestors: set[bytes] = set()  # resolved dirs holding something this layer wrote
        self.dir_times: dict[bytes, tuple[int, int]] = {}
        self.dir_modes: dict[bytes, int] = {}  # rootless: modes applied at the end
        self.writable: set[bytes] = set()  # rootless: directories known to be u+wx
        self.touched: set[bytes] = set()  # directories whose times are remembered
        self.lowers: list[_Root] = []  # overlay mode: lower layers, topmost first

    def close(self) -> None:
        self.tree.close()
        for lower in self.lowers:
            lower.close()

    def use_lowers(self, paths: Sequence[str]) -> None:
        self.lowers = [_Root(path, self.name) for path in paths]
        self.tree.on_create = self._like_lower
        self.tree.on_missing = self._symlink_from_lower

    def _lower_entry(self, resolved: bytes) -> tuple[os.stat_result, _Root, int, bytes] | None:
        """The topmost lower's entry at ``resolved`` (lstat, its tree, parent fd, name); None
        when no lower has one or the topmost says it was deleted (a 0/0 whiteout)."""
        parts = resolved.split(b"/")
        for lower in self.lowers:
            try:
                parent, _ = lower.walk(parts[:-1], create=False, entry=resolved)
                info = os.lstat(parts[-1], dir_fd=parent)
            except (OSError, UnpackError):
                continue
            if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
                return None
            return info, lower, parent, parts[-1]
        return None

    def _symlink_from_lower(self, resolved: bytes, parent: int, name: bytes) -> bool:
        """A path this layer goes through is a symlink in the lowers (lib -> usr/lib): copy it
        up, so the walk follows it as the merged view will, instead of shadowing it with a
        directory."""
        found = self._lower_entry(resolved)
        if found is None or not stat.S_ISLNK(found[0].st_mode):
            return False
        info, _, lower_parent, lower_name = found
        os.symlink(os.readlink(lower_name, dir_fd=lower_parent), name, dir_fd=parent)
        if not self.rootless:
            os.chown(name, info.st_uid, info.st_gid, dir_fd=parent, follow_symlinks=False)
        os.utime(
            name, ns=(info.st_atime_ns, info.st_mtime_ns), dir_fd=parent, follow_symlinks=False
        )
        return True

    def _like_lower(self, resolved: bytes, fd: int) -> None:
        """A directory walk() just made takes the owner, mode and times of the topmost lower
        directory at that path (what overlayfs's copy-up keeps)."""
        found = self._lower_entry(resolved)
        if found is None or not stat.S_ISDIR(found[0].st_mode):
            return
        info = found[0]
        proc = f"/proc/self/fd/{fd}"
        if not self.rootless:
            os.chown(proc, info.st_uid, info.st_gid)
        mode = stat.S_IMODE(info.st_mode)
        if self.rootless:
            self.dir_modes[resolved] = mode
            mode |= 0o700
        os.chmod(proc, mode)
        self.dir_times[resolved] = (info.st_atime_ns, info.st_mtime_ns)

    def warn(self, message: str) -> None:
        self.warnings.append(f"layer {self.name}: {message}")

    def fail(self, entry: _Entry | bytes, message: str) -> UnpackError:
        shown = entry.display() if isinstance(entry, _Entry) else os.fsdecode(entry)
        return UnpackError(f"layer {self.name}: entry {shown!r}: {message}")

    # -- reading headers --------------------------------------------------------------------
    def _next(self) -> _Entry | None:
        reader = self.reader
        pax: dict[bytes, bytes] = {}
        long_name: bytes | None = None
        long_link: bytes | None = None
        while True:
            if reader.at_end():
                # EOF at a header boundary without the end-of-archive blocks: the end, as Go's
                # archive/tar takes it (the diff_id still covers a truncation there).
                if pax or long_name is not None or long_link is not None:
                    raise UnpackError(f"layer {self.name}: truncated tar stream")
                return None
            block = reader.read(512)
            if block == _ZERO_BLOCK:
                return None
            self._check_sum(block)
            kind = block[156:157]
            size = _number(block[124:136])
            if size < 0:
                raise UnpackError(f"layer {self.name}: negative size in a tar header")
            padded = (size + 511) & ~511
            if kind in (_PAX, _PAX_GLOBAL, _GNU_LONGNAME, _GNU_LONGLINK):
                biggest = MAX_PAX if kind in (_PAX, _PAX_GLOBAL) else MAX_NAME + 1
                if size > biggest:
                    what = "PAX header" if biggest == MAX_PAX else "long name"
                    raise UnpackError(
                        f"layer {self.name}: a {what} of {size} bytes (the limit is {biggest})"
                    )
                data = reader.read(padded)[:size]
                if kind == _PAX:
                    pax.update(_parse_pax(data, self.name))
                elif kind == _GNU_LONGNAME:
                    long_name = _cstring(data)
                elif kind == _GNU_LONGLINK:
                    long_link = _cstring(data)
                # Global headers are not merged into entries (Go's archive/tar neither).
                continue
            entry = _Entry()
            magic = block[257:263]
            name = _cstring(block[0:100])
            if magic == b"ustar\0":  # POSIX ustar: the prefix field extends the name
                prefix = _cstring(block[345:500])
                if prefix:
                    name = prefix + b"/" + name
            entry.name = long_name if long_name is not None else name
            entry.linkname = long_link if long_link is not None else _cstring(block[157:257])
            entry.mode = _number(block[100:108])
            entry.uid = _number(block[108:116])
            entry.gid = _number(block[116:124])
            entry.mtime = _number(block[136:148]) * 1_000_000_000
            entry.type = kind
            entry.size = size
            if kind in (_CHR, _BLK):
                entry.devmajor = _number(block[329:337])
                entry.devminor = _number(block[337:345])
            else:
                entry.devmajor = entry.devminor = 0
            if pax:
                self._apply_pax(entry, pax)
            if len(entry.name) > MAX_NAME or len(entry.linkname) > MAX_NAME:
                raise self.fail(entry.name[:200], f"name longer than {MAX_NAME} bytes")
            if b"\0" in entry.name or b"\0" in entry.linkname:
                raise self.fail(entry.name[:200], "NUL byte in a name")
            return entry

    def _check_sum(self, block: bytes) -> None:
        try:
            stored = _number(block[148:156])
        except ValueError:
            raise UnpackError(f"layer {self.name}: not a tar stream (bad header)") from None
        unsigned = sum(block) - sum(block[148:156]) + 256  # the field counts as spaces
        if stored != unsigned:
            # Some old tars summed signed chars.
            high = sum(1 for b in block[:148] if b > 127) + sum(1 for b in block[156:] if b > 127)
            if stored != unsigned - 256 * high:
                raise UnpackError(f"layer {self.name}: not a tar stream (bad header checksum)")

    def _apply_pax(self, entry: _Entry, pax: dict[bytes, bytes]) -> None:
        for key, value in pax.items():
            try:
                if key == b"path":
                    entry.name = value
                elif key == b"linkpath":
                    entry.linkname = value
                elif key == b"size":
                    entry.size = int(value)
                elif key == b"uid":
                    entry.uid = int(value)
                elif key == b"gid":
                    entry.gid = int(value)
                elif key == b"mtime":
                    entry.mtime = _nanoseconds(value, self.name)
                elif key == b"atime":
                    entry.atime = _nanoseconds(value, self.name)
                elif key.startswith(b"SCHILY.xattr."):
                    entry.xattrs[key[13:].decode("utf-8", "surrogateescape")] = value
                elif key.startswith(b"LIBARCHIVE.xattr."):
                    import base64
                    from urllib.parse import unquote_to_bytes

                    xname = unquote_to_bytes(key[17:]).decode("utf-8", "surrogateescape")
                    entry.xattrs[xname] = base64.b64decode(value + b"=" * (-len(value) % 4))
                elif key.startswith(b"GNU.sparse."):
                    raise self.fail(entry.name, "GNU sparse files are not supported")
            except ValueError:
                shown = key.decode(errors="replace")
                raise self.fail(entry.name, f"malformed PAX record {shown}") from None

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        while True:
            entry = self._next()
            if entry is None:
                break
            self.entries += 1
            try:
                self._apply(entry)
            except UnpackError:
                raise
            except OSError as err:
                what = (err.strerror or str(err)).lower()
                raise self.fail(entry, what) from None
            except ValueError as err:  # e.g. a name os.* refuses
                raise self.fail(entry, str(err)) from None
        self._finish()

    def _finish(self) -> None:
        """Directory modes (rootless) and times, deepest first, once nothing more is written
        inside them."""
        tree = self.tree
        paths = set(self.dir_times) | set(self.dir_modes)
        # Deepest first, the root last.
        for path in sorted(paths, key=lambda p: p.count(b"/") if p else -1, reverse=True):
            parts = path.split(b"/") if path else []
            try:
                if parts:
                    parent, _ = tree.walk(parts[:-1], create=False, entry=path)
                    name = parts[-1]
                    info = os.lstat(name, dir_fd=parent)
                else:
                    parent, name = tree.fd, b"."
                    info = os.fstat(tree.fd)
                if not stat.S_ISDIR(info.st_mode):
                    continue
                mode = self.dir_modes.get(path)
                if mode is not None:
                    os.chmod(name, mode, dir_fd=parent, follow_symlinks=False)
                times = self.dir_times.get(path)
                if times is not None:
                    os.utime(name, ns=times, dir_fd=parent, follow_symlinks=False)
            except (FileNotFoundError, UnpackError):
                continue  # removed or replaced later in the layer
            except OSError as err:
                raise self.fail(path, (err.strerror or str(err)).lower()) from None

    def _apply(self, entry: _Entry) -> None:
        parts = _clean(entry.name)
        if parts is None:
            raise self.fail(entry, "the name climbs out of the root (../)")
        kind = entry.type
        if kind in _FILE_TYPES and entry.size > self.reader.limit - self.reader.total:
            raise self.fail(
                entry,
                f"{entry.size} bytes would take the layer past its limit of {self.reader.limit}"
                " uncompressed bytes: refusing a possible decompression bomb",
            )
        if not parts:
            if kind == _DIR:
                self._root_dir(entry)
                return
            raise self.fail(entry, "it would replace the root directory")
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self.reader.skip((entry.size + 511) & ~511 if kind in _FILE_TYPES else 0)
            self._whiteout(entry, parts)
            return
        parent, resolved = self._parent(entry, parts[:-1])
        path = resolved + b"/" + base if resolved else base
        if kind in _FILE_TYPES:
            self._file(entry, parent, base, path)
        elif kind == _DIR:
            self._dir(entry, parent, base, path)
        elif kind == _SYM:
            self._symlink(entry, parent, base, path)
        elif kind == _LNK:
            self._hardlink(entry, parent, base, path)
        elif kind in (_CHR, _BLK, _FIFO):
            self._special(entry, parent, base, path)
        else:
            raise self.fail(entry, f"unsupported tar entry type {kind!r}")
        self.created.add(path)
        self._mark_ancestors(resolved)

    def _mark_ancestors(self, resolved: bytes) -> None:
        ancestors = self.ancestors
        while resolved not in ancestors:
            ancestors.add(resolved)
            if not resolved:
                return
            resolved = resolved.rpartition(b"/")[0]

    def _parent(self, entry: _Entry, parts: list[bytes]) -> tuple[int, bytes]:
        if not self.rootless:
            fd, resolved = self.tree.walk(parts, create=True, entry=entry.name)
            if resolved not in self.touched:
                self._remember(fd, resolved)
            return fd, resolved
        # Rootless: a lower layer's directory without u+wx is opened up until the end.
        try:
            fd, resolved = self.tree.walk(parts, create=True, entry=entry.name)
        except PermissionError:
            self._open_up(parts)
            fd, resolved = self.tree.walk(parts, create=True, entry=entry.name)
        if resolved not in self.writable:
            self._open_up(resolved.split(b"/") if resolved else [])
            self.writable.add(resolved)
        if resolved not in self.touched:
            self._remember(fd, resolved)
        return fd, resolved

    def _remember(self, fd: int, resolved: bytes) -> None:
        """A directory this layer changes keeps its times unless the layer carries an entry
        for it (umoci's rule: a whiteout-only layer leaves its directory's mtime alone)."""
        self.touched.add(resolved)
        if resolved not in self.dir_times:
            info = os.stat(fd)
            self.dir_times[resolved] = (info.st_atime_ns, info.st_mtime_ns)

    def _open_up(self, parts: list[bytes]) -> None:
        for depth in range(len(parts) + 1):
            try:
                fd, resolved = self.tree.walk(parts[:depth], create=False, entry=b"")
            except FileNotFoundError:
                return
            info = os.stat(fd)
            if info.st_mode & 0o700 != 0o700:
                self.dir_modes.setdefault(resolved, stat.S_IMODE(info.st_mode))
                os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(info.st_mode) | 0o700)

    def _replace(self, parent: int, base: bytes, path: bytes) -> None:
        """Remove whatever is at (parent, base) so a new entry can take its place."""
        info = os.lstat(base, dir_fd=parent)
        if stat.S_ISDIR(info.st_mode):
            self.tree.forget(path)
            import shutil

            shutil.rmtree(base, dir_fd=parent)  # fd-based, never follows a symlink
        else:
            os.unlink(base, dir_fd=parent)

    # -- entry kinds ------------------------------------------------------------------------
    def _file(self, entry: _Entry, parent: int, base: bytes, path: bytes) -> None:
        # Created with its permission bits (the fd stays writable whatever they are): most
        # files then need no chmod; the umask and special bits are corrected below.
        mode = entry.mode & 0o777
        try:
            fd = os.open(base, _O_NEWFILE, mode, dir_fd=parent)
        except FileExistsError:
            self._replace(parent, base, path)
            fd = os.open(base, _O_NEWFILE, mode, dir_fd=parent)
        try:
            if entry.size:
                self.reader.copy(fd, entry.size)
                self.reader.skip(-entry.size & 511, padding=True)
            self._attributes(fd, entry)
        finally:
            os.close(fd)

    def _attributes(self, fd: int, entry: _Entry) -> None:
        """Owner, then mode (chown clears setuid), then xattrs (chown clears
        security.capability), then times, all through the entry's own fd."""
        self._owner_and_mode(fd, entry, entry.mode & 0o7777)
        if entry.xattrs:
            self._xattrs(fd, entry)
        mtime = entry.mtime
        os.utime(fd, ns=(entry.atime if entry.atime is not None else mtime, mtime))

    def _owner_and_mode(self, fd: int, entry: _Entry, mode: int) -> None:
        """fchown and fchmod, each only when the inode differs (every metadata write is a
        journal transaction: a busy disk makes them the cost of an unpack)."""
        info = os.fstat(fd)
        chowned = False
        if not self.rootless and (info.st_uid != entry.uid or info.st_gid != entry.gid):
            os.fchown(fd, entry.uid, entry.gid)
            chowned = True
        if chowned or stat.S_IMODE(info.st_mode) != mode:
            os.fchmod(fd, mode)

    def _xattrs(self, target: int | bytes, entry: _Entry) -> None:
        for key, value in entry.xattrs.items():
            if key.startswith(("trusted.overlay.", "user.overlay.")):
                self.warn(f"{entry.display()}: xattr {key} dropped (it would steer overlayfs)")
                continue
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:
                    os.setxattr(target, key, value, follow_symlinks=False)
            except OSError as err:
                if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES):
                    raise
                self.warn(
                    f"{entry.display()}: xattr {key} not set ({(err.strerror or '').lower()})"
                )

    def _root_dir(self, entry: _Entry) -> None:
        """A directory entry for "/" updates the root's attributes (it never replaces it)."""
        fd = self.tree.fd
        mode = entry.mode & 0o7777
        if self.rootless:
            self.dir_modes[b""] = mode
            mode |= 0o700
        self._owner_and_mode(fd, entry, mode)
        if entry.xattrs:
            self._xattrs(fd, entry)
        self.dir_times[b""] = (entry.atime if entry.atime is not None else entry.mtime, entry.mtime)

    def _dir(self, entry: _Entry, parent: int, base: bytes, path: bytes) -> None:
        mode = entry.mode & 0o7777
        if self.rootless:
            self.dir_modes[path] = mode  # the real mode at the end; u+rwx until then
            mode |= 0o700
        try:
            os.mkdir(base, mode & 0o777, dir_fd=parent)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(base, dir_fd=parent).st_mode):
                self._replace(parent, base, path)
                os.mkdir(base, mode & 0o777, dir_fd=parent)
        fd = os.open(base, _O_DIR, dir_fd=parent)
        try:
            self._owner_and_mode(fd, entry, mode)
            if entry.xattrs:
                self._xattrs(fd, entry)
        except BaseException:
            os.close(fd)
            raise
        if not self.tree.keep(path, fd):  # its children are next: keep the fd for them
            os.close(fd)
        self.dir_times[path] = (
            entry.atime if entry.atime is not None else entry.mtime,
            entry.mtime,
        )

    def _symlink(self, entry: _Entry, parent: int, base: bytes, path: bytes) -> None:
        if not entry.linkname:
            raise self.fail(entry, "symlink with an empty target")
        try:
            os.symlink(entry.linkname, base, dir_fd=parent)
        except FileExistsError:
            self._replace(parent, base, path)
            os.symlink(entry.linkname, base, dir_fd=parent)
        self._node_attributes(entry, parent, base, chmod=False)

    def _node_attributes(self, entry: _Entry, parent: int, base: bytes, *, chmod: bool) -> None:
        """Attributes of a node that has no fd of its own (symlink, device, FIFO), by (parent
        fd, name) and never following the name."""
        info = os.lstat(base, dir_fd=parent)
        chowned = False
        if not self.rootless and (info.st_uid != entry.uid or info.st_gid != entry.gid):
            os.chown(base, entry.uid, entry.gid, dir_fd=parent, follow_symlinks=False)
            chowned = True
        if chmod and (chowned or stat.S_IMODE(info.st_mode) != entry.mode & 0o7777):
            os.chmod(base, entry.mode & 0o7777, dir_fd=parent, follow_symlinks=False)
        if entry.xattrs:
            self._xattrs(b"/proc/self/fd/%d/%s" % (parent, base), entry)
        mtime = entry.mtime
        os.utime(
            base,
            ns=(entry.atime if entry.atime is not None else mtime, mtime),
            dir_fd=parent,
            follow_symlinks=False,
        )

    def _hardlink(self, entry: _Entry, parent: int, base: bytes, path: bytes) -> None:
        target = _clean(entry.linkname)
        if target is None:
            raise self.fail(entry, f"hardlink target {entry.linkname!r} climbs out of the root")
        if not target:
            raise self.fail(entry, "hardlink to the root directory")
        try:
            target_parent, resolved = self.tree.walk(
                target[:-1], create=False, entry=entry.linkname
            )
        except FileNotFoundError:
            raise self.fail(
                entry, f"hardlink target {os.fsdecode(entry.linkname)!r} does not exist"
            ) from None
        target_path = resolved + b"/" + target[-1] if resolved else target[-1]
        if target_path == path:
            return  # a link to itself: nothing to do
        try:
            info = os.lstat(target[-1], dir_fd=target_parent)
        except FileNotFoundError:
            raise self.fail(
                entry, f"hardlink target {os.fsdecode(entry.linkname)!r} does not exist"
            ) from None
        if stat.S_ISDIR(info.st_mode):
            raise self.fail(entry, "hardlink to a directory")
        try:
            os.link(
                target[-1], base, src_dir_fd=target_parent, dst_dir_fd=parent, follow_symlinks=False
            )
        except FileExistsError:
            existing = os.lstat(base, dir_fd=parent)
            if (existing.st_dev, existing.st_ino) == (info.st_dev, info.st_ino):
                return
            self._replace(parent, base, path)
            # The removal may have taken the target's parent with it (a path below itself).
            target_parent, _ = self.tree.walk(target[:-1], create=False, entry=entry.linkname)
            os.link(
                target[-1], base, src_dir_fd=target_parent, dst_dir_fd=parent, follow_symlinks=False
            )

    def _special(self, entry: _Entry, parent: int, base: bytes, path: bytes) -> None:
        kind = {_CHR: stat.S_IFCHR, _BLK: stat.S_IFBLK, _FIFO: stat.S_IFIFO}[entry.type]
        device = os.makedev(entry.devmajor, entry.devminor) if kind != stat.S_IFIFO else 0
        try:
            self._mknod(parent, base, path, kind | (entry.mode & 0o777), device)
        except PermissionError:
            if kind == stat.S_IFIFO:
                raise
            # Rootless (or no CAP_MKNOD): an empty file stands in for the device.
            which = "character" if kind == stat.S_IFCHR else "block"
            self.warn(
                f"{entry.display()}: {which} device {entry.devmajor}:{entry.devminor} cannot be"
                " created without privileges; an empty placeholder file is there instead"
            )
            self._file_placeholder(entry, parent, base, path)
            return
        self._node_attributes(entry, parent, base, chmod=True)

    def _mknod(self, parent: int, base: bytes, path: bytes, mode: int, device: int) -> None:
        if self.rootless and not stat.S_ISFIFO(mode):
            raise PermissionError(errno.EPERM, "mknod")
        try:
            os.mknod(base, mode, device, dir_fd=parent)
        except FileExistsError:
            self._replace(parent, base, path)
            os.mknod(base, mode, device, dir_fd=parent)

    def _file_placeholder(self, entry: _Entry, parent: int, base: bytes, path: bytes) -> None:
        try:
            fd = os.open(base, _O_NEWFILE, 0o600, dir_fd=parent)
        except FileExistsError:
            self._replace(parent, base, path)
            fd = os.open(base, _O_NEWFILE, 0o600, dir_fd=parent)
        try:
            self._attributes(fd, entry)
        finally:
            os.close(fd)

    # -- whiteouts --------------------------------------------------------------------------
    def _whiteout(self, entry: _Entry, parts: list[bytes]) -> None:
        base = parts[-1]
        if base.startswith(WHITEOUT_META):
            if base == WHITEOUT_OPAQUE:
                self._opaque(entry, parts[:-1])
            return  # other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): skipped
        target = base[len(WHITEOUT_PREFIX) :]
        if target in (b"", b".", b".."):
            raise self.fail(entry, "a whiteout without a name")
        if self.overlay:
            parent, resolved = self._parent(entry, parts[:-1])
            path = resolved + b"/" + target if resolved else target
            if path in self.created:
                return  # this layer's own entry: not hidden by its own whiteout
            try:
                os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent)
            except FileExistsError:
                return  # duplicate whiteout
            except PermissionError:
                raise self.fail(
                    entry, "cannot create the overlay whiteout (a 0/0 character device)"
                ) from None
            self.created.add(path)
            self._mark_ancestors(resolved)
            return
        try:
            parent, resolved = self.tree.walk(parts[:-1], create=False, entry=entry.name)
        except FileNotFoundError:
            return  # nothing below to hide
        if resolved not in self.touched:
            self._remember(parent, resolved)
        path = resolved + b"/" + target if resolved else target
        self._remove_lower(parent, target, path)

    def _opaque(self, entry: _Entry, parts: list[bytes]) -> None:
        if self.overlay:
            directory, resolved = self._parent(entry, parts)
            name = "user.overlay.opaque" if self.rootless else "trusted.overlay.opaque"
            try:
                os.setxattr(f"/proc/self/fd/{directory}", name, b"y")
            except OSError as err:
                raise self.fail(
                    entry, f"cannot set {name} ({(err.strerror or '').lower()})"
                ) from None
            self._mark_ancestors(resolved)
            return
        try:
            directory, resolved = self.tree.walk(parts, create=False, entry=entry.name)
        except FileNotFoundError:
            return
        if resolved not in self.touched:
            self._remember(directory, resolved)
        self._remove_lower_children(directory, resolved)

    def _remove_lower_children(self, directory: int, resolved: bytes) -> None:
        fd = os.open(".", _O_DIR, dir_fd=directory)
        try:
            names = os.listdir(fd)
            for child in names:
                raw = os.fsencode(child)
                self._remove_lower(fd, raw, resolved + b"/" + raw if resolved else raw)
        finally:
            os.close(fd)

    def _remove_lower(self, parent: int, base: bytes, path: bytes) -> None:
        """Remove (parent, base) unless this layer wrote it; a directory holding this layer's
        entries loses only the lower ones."""
        if path in self.created and path not in self.ancestors:
            return
        try:
            info = os.lstat(base, dir_fd=parent)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(info.st_mode):
            if path not in self.created:
                os.unlink(base, dir_fd=parent)
            return
        if path in self.ancestors:
            fd = os.open(base, _O_PATH_DIR, dir_fd=parent)
            try:
                self._remove_lower_children(fd, path)
            finally:
                os.close(fd)
            return
        if path in self.created:
            return
        self.tree.forget(path)
        import shutil

        shutil.rmtree(base, dir_fd=parent)
