"""Per-namespace kernel settings: hostname, domainname, sysctl, the loopback interface."""

from __future__ import annotations

# Imported at module load, before pivot_root: afterwards the host's lib-dynload is unreachable.
import _socket
import fcntl
import struct

from runtime.errors import LinuxError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.linux.syscalls import Syscalls

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def write_sysctls(sysctl: dict[str, str]) -> None:
    """Through the container's own /proc/sys (so network sysctls hit its network namespace)."""
    for key, value in sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as handle:
                handle.write(value)
        except OSError as err:
            raise LinuxError("write sysctl", err.errno or 0, f"{key}={value}") from None


def set_names(sys: Syscalls, hostname: str | None, domainname: str | None) -> None:
    if hostname:
        sys.sethostname(hostname)
    if domainname:
        sys.setdomainname(domainname)


def write_time_offsets(offsets: dict[str, dict[str, int]]) -> None:
    """Clock offsets of the time namespace just unshared: written before its first process
    exists (the kernel refuses them afterwards), one "clock secs nanosecs" line per clock."""
    lines = "".join(
        f"{clock} {value.get('secs', 0)} {value.get('nanosecs', 0)}\n"
        for clock, value in offsets.items()
    )
    try:
        with open("/proc/self/timens_offsets", "w") as handle:
            handle.write(lines)
    except OSError as err:
        raise LinuxError("write timens_offsets", err.errno or 0, lines.strip()) from None


def loopback_up() -> None:
    """A new network namespace starts with ``lo`` down; runc brings it up, so do we."""
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        request = struct.pack("16sH14x", b"lo", 0)
        reply = fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request)
        flags = struct.unpack_from("16sH", reply)[1]
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))
    except OSError as err:
        raise LinuxError("bring up lo", err.errno or 0) from None
    finally:
        sock.close()
