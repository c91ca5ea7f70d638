"""A request body as a stream: Content-Length or chunked transfer-coding, read in big pieces.

Go clients (skopeo, podman) send blob PATCH bodies chunked, a few KiB to 32 KiB per chunk;
``readinto`` fills the caller's (1 MiB) buffer across chunk boundaries so the file write and
the hash update happen once per MiB, not once per chunk. ``Expect: 100-continue`` is answered
on the first read only: a request refused before its body is read (auth, bad name) never makes
the client send it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    class Readable(Protocol):
        def readinto(self, buffer: memoryview, /) -> int | None: ...
        def readline(self, size: int = -1, /) -> bytes: ...


MAX_LINE = 4096  # a chunk-size line or a trailer line
MAX_TRAILERS = 100


class BadBody(Exception):
    """Malformed chunked framing: the connection cannot be trusted any more."""


class IncompleteBody(Exception):
    """The client went away (or timed out) before the body ended.

    ``received`` bytes of this read call are in the caller's buffer (they may be kept)."""

    def __init__(self, received: int) -> None:
        super().__init__("request body ended early")
        self.received = received


class TooLarge(Exception):
    """More body than the caller accepts."""


class BodyReader:
    def __init__(
        self,
        rfile: Readable,
        length: int | None,
        chunked: bool = False,
        before_read: Callable[[], None] | None = None,
    ) -> None:
        self._rfile = rfile
        self.length = None if chunked else (length or 0)
        self.chunked = chunked
        self._before_read = before_read
        self._remaining = 0 if chunked else (length or 0)  # of the body, or of this chunk
        self._chunk_started = False
        self.done = not chunked and not length
        self.received = 0

    @property
    def started(self) -> bool:
        return self._before_read is None

    def readinto(self, buffer: memoryview) -> int:
        """Fill ``buffer`` as far as the body goes; 0 at the end of the body."""
        if self.done or not len(buffer):
            return 0
        self._start()
        filled = 0
        while filled < len(buffer) and not self.done:
            if self.chunked and self._remaining == 0:
                try:
                    self._next_chunk()
                except IncompleteBody:
                    raise IncompleteBody(filled) from None
                continue
            want = min(len(buffer) - filled, self._remaining)
            try:
                got = self._rfile.readinto(buffer[filled : filled + want])
            except OSError:
                got = 0
            if not got:
                raise IncompleteBody(filled)
            filled += got
            self._remaining -= got
            self.received += got
            if not self.chunked and self._remaining == 0:
                self.done = True
        return filled

    def read(self, limit: int) -> bytes:
        """The whole body; TooLarge if it is longer than ``limit``."""
        if self.length is not None and self.length > limit:
            raise TooLarge
        out = bytearray()
        buffer = memoryview(bytearray(min(limit + 1, 1 << 20) or 1))
        while True:
            n = self.readinto(buffer)
            if not n:
                return bytes(out)
            out += buffer[:n]
            if len(out) > limit:
                raise TooLarge

    def drain(self, limit: int) -> bool:
        """Read and discard the rest (up to ``limit`` bytes); True when the body is over."""
        if self.done:
            return True
        if not self.started:
            return False  # the client waits for 100 Continue: it sent nothing
        if self.length is not None and self.length - self.received > limit:
            return False
        buffer = memoryview(bytearray(64 * 1024))
        seen = 0
        try:
            while seen <= limit:
                n = self.readinto(buffer)
                if not n:
                    return True
                seen += n
        except (IncompleteBody, BadBody, OSError):
            return False
        return False

    def _start(self) -> None:
        if self._before_read is not None:
            before, self._before_read = self._before_read, None
            before()

    def _next_chunk(self) -> None:
        if self._chunk_started and self._readline() != b"":
            raise BadBody("missing CRLF after chunk data")
        line = self._readline()
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadBody(f"bad chunk size {size_text[:20]!r}") from None
        if size < 0 or len(size_text) > 16:
            raise BadBody("bad chunk size")
        self._chunk_started = True
        if size == 0:
            for _ in range(MAX_TRAILERS):
                if self._readline() == b"":
                    self.done = True
                    return
            raise BadBody("too many trailers")
        self._remaining = size

    def _readline(self) -> bytes:
        try:
            line = self._rfile.readline(MAX_LINE + 1)
        except OSError:
            line = b""
        if not line:
            raise IncompleteBody(0)
        if len(line) > MAX_LINE or not line.endswith(b"\n"):
            raise BadBody("chunk line too long")
        return line.rstrip(b"\r\n")
