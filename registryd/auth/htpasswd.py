"""The htpasswd file: ``user:bcrypt-hash`` lines, checked with the ``bcrypt`` library.

Only bcrypt entries (``$2y$``, ``$2b$``, ``$2a$``) are accepted: MD5 (``$apr1$``), SHA1
(``{SHA}``), crypt and plain-text entries are refused at load with the line that holds one.
The file is re-read when its mtime, size or inode changes, so ``registryd htpasswd`` (or
Apache's ``htpasswd -B``) takes effect without a restart. A file that becomes unreadable or
invalid while serving is logged and authenticates nobody until it is fixed (fail closed).

Checks cost the same whether the user exists or not (an unknown user is checked against a
dummy hash of the file's highest cost), and failures are never cached. Successes are: bcrypt
costs ~80 ms at cost 10 and clients send Basic credentials on every request, so a keyed hash
of each accepted (user, password) is remembered while the user's entry is unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
import threading
from typing import NamedTuple

import bcrypt

from registryd.auth.errors import AuthConfigError

log = logging.getLogger("registryd.auth")

_BCRYPT = re.compile(rb"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
DEFAULT_COST = 10
_MAX_PASSWORD = 72  # bcrypt reads no further; Apache's htpasswd truncates the same way
_CACHE_LIMIT = 4096


class _Stamp(NamedTuple):
    mtime_ns: int
    size: int
    ino: int


def _kind(hashed: str) -> str:
    """Name the hash kind of a refused entry, for the error message."""
    for prefix, kind in (
        ("$apr1$", "MD5 ($apr1$)"),
        ("{SHA}", "SHA-1 ({SHA})"),
        ("$1$", "MD5-crypt ($1$)"),
        ("$5$", "SHA-256-crypt ($5$)"),
        ("$6$", "SHA-512-crypt ($6$)"),
        ("$2", "malformed bcrypt"),
    ):
        if hashed.startswith(prefix):
            return kind
    return "crypt or plain-text"


def parse(text: str, path: str) -> dict[str, bytes]:
    """user → bcrypt hash. Raises AuthConfigError naming the first bad line."""
    users: dict[str, bytes] = {}
    lines: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        where = f"{path} line {number}"
        if not sep or not user:
            raise AuthConfigError(f"{where}: expected user:hash")
        if not _BCRYPT.fullmatch(hashed.encode("ascii", "replace")):
            raise AuthConfigError(
                f"{where}: user {user!r} has a {_kind(hashed)} hash; registryd accepts only"
                " bcrypt ($2y$/$2b$): create entries with 'registryd htpasswd' or 'htpasswd -B'"
            )
        if user in users:
            raise AuthConfigError(f"{where}: user {user!r} already on line {lines[user]}")
        users[user] = hashed.encode("ascii")
        lines[user] = number
    return users


def _cost(hashed: bytes) -> int:
    match = _BCRYPT.fullmatch(hashed)
    return int(match.group(1)) if match else DEFAULT_COST


class Htpasswd:
    """One htpasswd file, re-read when it changes. Thread-safe."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._secret = secrets.token_bytes(32)
        self._accepted: dict[bytes, bytes] = {}  # keyed (user, password) → the hash it matched
        stamp, users = self._read()  # raises: a bad file at start-up is a config error
        self._install(stamp, users)

    def _read(self) -> tuple[_Stamp, dict[str, bytes]]:
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except OSError as err:
            raise AuthConfigError(f"htpasswd file {self.path}: {err.strerror}") from err
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise AuthConfigError(f"htpasswd file {self.path}: not UTF-8 text") from err
        return _Stamp(st.st_mtime_ns, st.st_size, st.st_ino), parse(text, self.path)

    def _install(self, stamp: _Stamp, users: dict[str, bytes]) -> None:
        cost = max((_cost(h) for h in users.values()), default=DEFAULT_COST)
        self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(cost))
        self._users = users
        self._stamp: _Stamp | None = stamp
        self._accepted = {}

    def _current(self) -> dict[str, bytes]:
        try:
            st = os.stat(self.path)
            stamp: _Stamp | None = _Stamp(st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if stamp == self._stamp:
            return self._users
        with self._lock:
            if stamp != self._stamp:
                try:
                    new_stamp, users = self._read()
                    self._install(new_stamp, users)
                    log.info("htpasswd %s reloaded: %d users", self.path, len(users))
                except AuthConfigError as err:
                    log.error("%s; no one can log in until it is fixed", err)
                    self._users, self._stamp, self._accepted = {}, stamp, {}
            return self._users

    def users(self) -> frozenset[str]:
        return frozenset(self._current())

    def fingerprint(self, user: str) -> str | None:
        """A short digest of the user's entry: it changes with the password (refresh tokens
        carry it, so a password change revokes them). None for an unknown user."""
        hashed = self._current().get(user)
        if hashed is None:
            return None
        return hashlib.sha256(hashed).hexdigest()[:16]

    def check(self, user: str, password: bytes) -> bool:
        users = self._current()
        hashed = users.get(user)
        key = hmac.new(self._secret, user.encode() + b"\0" + password, "sha256").digest()
        if hashed is not None and self._accepted.get(key) == hashed:
            return True
        ok = bcrypt.checkpw(password[:_MAX_PASSWORD], hashed if hashed is not None else self._dummy)
        if ok and hashed is not None:
            if len(self._accepted) >= _CACHE_LIMIT:
                self._accepted = {}
            self._accepted[key] = hashed
            return True
        return False


def add_user(path: str, user: str, password: str, cost: int = DEFAULT_COST) -> bool:
    """Set ``user``'s password (bcrypt) in the htpasswd file ``path``, creating it 0600.
    Other lines (comments included) are kept. Returns True when the user is new.

    The file is replaced atomically (temp file, fsync, rename), keeping its mode."""
    if not user or ":" in user or any(c.isspace() for c in user):
        raise AuthConfigError(f"invalid user name {user!r}: no ':' or whitespace, not empty")
    secret = password.encode("utf-8")
    if not secret:
        raise AuthConfigError("empty password")
    if len(secret) > _MAX_PASSWORD:
        raise AuthConfigError(f"password longer than {_MAX_PASSWORD} bytes (bcrypt's limit)")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        text, mode = "", 0o600
    except OSError as err:
        raise AuthConfigError(f"htpasswd file {path}: {err.strerror}") from err
    parse(text, path)  # refuse to rewrite a file we could not serve
    entry = f"{user}:{bcrypt.hashpw(secret, bcrypt.gensalt(cost)).decode('ascii')}"
    lines = text.splitlines()
    new = True
    for i, line in enumerate(lines):
        if line.strip().partition(":")[0] == user and not line.lstrip().startswith("#"):
            lines[i], new = entry, False
    if new:
        lines.append(entry)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".htpasswd.", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return new
