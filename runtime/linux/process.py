"""The container process itself: rlimits, oom score, user, umask, cwd, env, exec lookup."""

from __future__ import annotations

import os
import resource  # imported here, before pivot_root: the host's lib-dynload is gone after it

from runtime.errors import ContainerInitError, LinuxError
from runtime.spec.tables import RLIMITS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.linux.syscalls import Syscalls
    from runtime.spec.types import Process, Rlimit, User

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_RLIM_INFINITY = 0xFFFFFFFFFFFFFFFF


def apply_rlimits(rlimits: list[Rlimit]) -> None:
    for rlimit in rlimits:
        number = RLIMITS[rlimit["type"]]
        soft = _limit(rlimit["soft"])
        hard = _limit(rlimit["hard"])
        try:
            resource.setrlimit(number, (soft, hard))
        except (OSError, ValueError) as err:
            current = resource.getrlimit(number)
            detail = (
                f"{rlimit['type']} to soft={rlimit['soft']} hard={rlimit['hard']}"
                f" (current soft={_show(current[0])} hard={_show(current[1])};"
                " raising a hard limit needs CAP_SYS_RESOURCE and stays within"
                " the system's maximum)"
            )
            errno = getattr(err, "errno", None) or 1
            raise LinuxError("setrlimit", errno, detail) from None


def _limit(value: int) -> int:
    return resource_infinity() if value >= _RLIM_INFINITY or value < 0 else value


def resource_infinity() -> int:
    return resource.RLIM_INFINITY


def _show(value: int) -> str:
    return "unlimited" if value == resource_infinity() else str(value)


def set_oom_score_adj(value: int) -> None:
    try:
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write(str(value))
    except OSError as err:
        raise LinuxError("write oom_score_adj", err.errno or 0, str(value)) from None


def switch_user(sys: Syscalls, user: User, setgroups_allowed: bool = True) -> None:
    """setgroups -> setresgid -> setresuid (capabilities survive via PR_SET_KEEPCAPS)."""
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    groups = user.get("additionalGids", [])
    if setgroups_allowed:
        sys.call("setgroups", str(groups), os.setgroups, groups)
    sys.call("setresgid", str(gid), os.setresgid, gid, gid, gid)
    sys.call("setresuid", str(uid), os.setresuid, uid, uid, uid)


def build_env(process: Process, home: str | None) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in process.get("env", []):
        key, _, value = entry.partition("=")
        env[key] = value
    if not env.get("HOME"):  # runc: an unset or empty HOME gets the user's home
        env["HOME"] = home or "/"
    return env


def home_of(uid: int) -> str | None:
    """The home directory /etc/passwd of the container gives ``uid`` (runc sets HOME so)."""
    try:
        with open("/etc/passwd", "rb") as handle:
            for line in handle.read().decode(errors="replace").splitlines():
                fields = line.split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5]
    except OSError:
        return None
    return None


def find_executable(name: str, env: dict[str, str]) -> str:
    """Resolve ``args[0]`` like exec.LookPath in the container, with runc's error words."""
    if "/" in name:
        if _is_executable(name):
            return name
        raise ContainerInitError(f'exec: "{name}": {_why_not(name)}')
    search = env.get("PATH", DEFAULT_PATH)
    # Go's filepath.SplitList: an empty PATH searches nowhere (not the current directory).
    for directory in search.split(":") if search else []:
        candidate = os.path.join(directory or ".", name)
        if _is_executable(candidate):
            return candidate
    raise ContainerInitError(f'exec: "{name}": executable file not found in $PATH')


def _is_executable(path: str) -> bool:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return (mode & 0o170000) != 0o040000 and os.access(path, os.X_OK)


def _why_not(path: str) -> str:
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        return (err.strerror or "cannot access").lower()
    if (mode & 0o170000) == 0o040000:
        return "is a directory"
    return "permission denied"
