"""The one syscall seam (rule 3): every namespace, mount, capability and prctl call is here.

``Syscalls`` calls libc through ctypes (Python 3.11 has no os.unshare/os.setns/mount) and turns
a failure into ``LinuxError`` with the operation, its argument and errno, in one place. Code that
sets a container up receives an instance, so unit tests pass a recording fake instead.
"""

from __future__ import annotations

import ctypes
import os

from runtime.errors import LinuxError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_libc = ctypes.CDLL("libc.so.6", use_errno=True)

# Syscalls glibc 2.36 has no wrapper for, by architecture.
_SYSCALL_NUMBERS = {
    "x86_64": {
        "clone": 56,
        "pivot_root": 155,
        "keyctl": 250,
        "seccomp": 317,
        "openat2": 437,
        "mount_setattr": 442,
    },
    "aarch64": {
        "clone": 220,
        "pivot_root": 41,
        "keyctl": 219,
        "seccomp": 277,
        "openat2": 437,
        "mount_setattr": 442,
    },
}
_NR = _SYSCALL_NUMBERS.get(os.uname().machine, _SYSCALL_NUMBERS["x86_64"])

_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]
_libc.syscall.restype = ctypes.c_long

# prctl(2) options
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# openat2(2) resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

AT_RECURSIVE = 0x8000
CLONE_PARENT = 0x00008000
_KEYCTL_JOIN_SESSION_KEYRING = 1
_KEYCTL_SETPERM = 5
_KEYCTL_DESCRIBE = 6
_SIGCHLD = 17
_SECCOMP_SET_MODE_FILTER = 1
MNT_DETACH = 0x2

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _bytes(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def _check(result: int, operation: str, detail: str = "") -> int:
    if result < 0:
        raise LinuxError(operation, ctypes.get_errno(), detail)
    return result


class Syscalls:
    """The real seam. Method names follow the syscalls; failures raise LinuxError."""

    def unshare(self, flags: int) -> None:
        _check(_libc.unshare(flags), "unshare", hex(flags))

    def setns(self, fd: int, nstype: int, path: str = "") -> None:
        _check(_libc.setns(fd, nstype), "setns", path)

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None:
        result = _libc.mount(_bytes(source), _bytes(target), _bytes(fstype), flags, _bytes(data))
        _check(result, "mount", f"{source or fstype or ''} on {target}".strip())

    def umount(self, target: str, flags: int = 0) -> None:
        _check(_libc.umount2(_bytes(target), flags), "umount", target)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        result = _libc.syscall(_NR["pivot_root"], _bytes(new_root), _bytes(put_old))
        _check(result, "pivot_root", new_root)

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        _check(_libc.sethostname(raw, len(raw)), "sethostname", name)

    def setdomainname(self, name: str) -> None:
        raw = name.encode()
        _check(_libc.setdomainname(raw, len(raw)), "setdomainname", name)

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), "prctl", str(option))

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        for index in range(2):
            shift = 32 * index
            data[index].effective = (effective >> shift) & 0xFFFFFFFF
            data[index].permitted = (permitted >> shift) & 0xFFFFFFFF
            data[index].inheritable = (inheritable >> shift) & 0xFFFFFFFF
        _check(_libc.capset(ctypes.byref(header), data), "capset")

    def openat2(self, dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
        how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
        result = _libc.syscall(
            _NR["openat2"], dirfd, _bytes(path), ctypes.byref(how), ctypes.sizeof(how)
        )
        return _check(result, "openat2", path)

    def mount_setattr(
        self, dirfd: int, path: str, flags: int, attr_set: int, attr_clr: int
    ) -> None:
        attr = _MountAttr(attr_set, attr_clr, 0, 0)
        result = _libc.syscall(
            _NR["mount_setattr"],
            dirfd,
            _bytes(path),
            flags,
            ctypes.byref(attr),
            ctypes.sizeof(attr),
        )
        _check(result, "mount_setattr", path)

    def join_session_keyring(self, name: str) -> None:
        """A new session keyring ``name`` for this process (not the caller's), searchable by
        its possessor as runc sets it (KEYCTL_JOIN_SESSION_KEYRING, then SETPERM)."""
        keyring = _libc.syscall(_NR["keyctl"], _KEYCTL_JOIN_SESSION_KEYRING, _bytes(name))
        if keyring < 0:
            errno = ctypes.get_errno()
            if errno == 38:  # ENOSYS: a kernel without keyrings (runc ignores it too)
                return
            raise LinuxError("join session keyring", errno, name)
        buffer = ctypes.create_string_buffer(256)
        length = _libc.syscall(
            _NR["keyctl"], _KEYCTL_DESCRIBE, ctypes.c_long(keyring), buffer, ctypes.c_long(256)
        )
        _check(length, "describe session keyring", name)
        # "type;uid;gid;perm;description", perm in hex; add KEY_USR_SEARCH (0x080000).
        perm = int(buffer.value.split(b";")[3], 16) | 0x080000
        result = _libc.syscall(_NR["keyctl"], _KEYCTL_SETPERM, ctypes.c_long(keyring), perm)
        _check(result, "set session keyring permissions", name)

    def load_seccomp(self, program: bytes, flags: int) -> int:
        """Install a seccomp filter on this thread: seccomp(SECCOMP_SET_MODE_FILTER, flags,
        &sock_fprog) with ``program`` an array of struct sock_filter (8 bytes each). Returns
        what the kernel returns (a listener fd with SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0).
        Without no_new_privs this needs CAP_SYS_ADMIN. Imports nothing: it runs last."""
        buffer = ctypes.create_string_buffer(program, len(program))
        fprog = _SockFprog(len(program) // 8, ctypes.addressof(buffer))
        result = _libc.syscall(
            _NR["seccomp"], _SECCOMP_SET_MODE_FILTER, ctypes.c_uint(flags), ctypes.byref(fprog)
        )
        return _check(result, "seccomp", "load filter")

    def fork_sibling(self) -> int:
        """fork(), but the child's parent is our parent (CLONE_PARENT), like os.fork returns.

        The container's init is made this way by the bootstrap child, so that it is a direct
        child of ``pyrun create``/``run``: waitable without becoming a subreaper, and re-parented
        to the caller's subreaper (containerd's shim, conmon) when pyrun exits. The caller must
        be single-threaded (it is: a freshly forked child); Python's at-fork hooks do not run,
        which is fine for a process that only sets the container up and then execs.
        """
        # clone(flags, stack=NULL, parent_tid, child_tid, tls): fork semantics on a copy of
        # the stack. Argument order is the same for the x86_64 and arm64 syscall.
        result = _libc.syscall(_NR["clone"], CLONE_PARENT | _SIGCHLD, None, None, None, None)
        return _check(result, "clone")

    # Plain os calls that set a container up go through the seam too, so a fake can record them
    # and every failure reads the same way.
    def call(self, operation: str, detail: str, func: Callable[..., Any], *args: Any) -> Any:
        try:
            return func(*args)
        except OSError as err:
            raise LinuxError(operation, err.errno or 0, detail) from None
