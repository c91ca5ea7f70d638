"""Becoming the container's process: the steps init and exec share, in runc's order.

Capabilities (the bounding set while CAP_SETPCAP is there) -> keep them across the user switch
-> user and groups -> cwd -> the sets themselves -> no_new_privs -> umask -> environment and
the executable. A seccomp filter is loaded before the capabilities go when it needs
CAP_SYS_ADMIN (no no_new_privs), else as late as possible (runc: standard_init_linux.go).
"""

from __future__ import annotations

import _signal
import os

from runtime.errors import ContainerInitError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from runtime.linux.seccomp import CompiledFilter
    from runtime.linux.syscalls import Syscalls
    from runtime.spec.types import Process

_SIG_DFL = 0


def become(
    sys: Syscalls,
    process: Process,
    *,
    groups_allowed: bool,
    seccomp: CompiledFilter | None = None,
) -> tuple[str, list[str], dict[str, str], Callable[[], None] | None]:
    """(executable, argv, environment, the late seccomp load or None)."""
    from runtime.linux.capabilities import CapabilityPlan
    from runtime.linux.process import build_env, find_executable, home_of, switch_user
    from runtime.linux.syscalls import PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS

    caps = CapabilityPlan(process.get("capabilities"))
    user = process.get("user", {})
    late: Callable[[], None] | None = None
    if seccomp is not None:
        program, flags = seccomp.program, seccomp.flags
        if process.get("noNewPrivileges"):

            def late() -> None:  # with no_new_privs: as late as possible
                sys.load_seccomp(program, flags)

        else:
            sys.load_seccomp(program, flags)  # needs CAP_SYS_ADMIN: before the caps go (runc)
    caps.drop_bounding(sys)
    sys.prctl(PR_SET_KEEPCAPS, 1)
    switch_user(sys, user, groups_allowed)
    chdir(process.get("cwd", "/"))
    sys.prctl(PR_SET_KEEPCAPS, 0)
    caps.apply(sys)
    if process.get("noNewPrivileges"):
        sys.prctl(PR_SET_NO_NEW_PRIVS, 1)
    if "umask" in user:
        os.umask(user["umask"])
    env = build_env(process, home_of(user.get("uid", 0)))
    args = process["args"]
    executable = find_executable(args[0], env)
    reset_signals()
    return executable, args, env, late


def chdir(cwd: str) -> None:
    try:
        os.chdir(cwd)
    except OSError as err:
        reason = (err.strerror or "failed").lower()
        raise ContainerInitError(
            f"chdir to cwd ({cwd!r}) set in config.json failed: {reason}"
        ) from None


def close_inherited_fds(preserve: int) -> None:
    """Only stdio and --preserve-fds reach the container; every other inherited fd is marked
    close-on-exec (pyrun's own fds already are)."""
    keep = 3 + preserve
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= keep:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the directory fd of the listing itself, already closed


# The signals that end runc's (Go) init while it waits: HUP INT TERM, and QUIT ILL TRAP ABRT
# STKFLT SYS; Go catches and ignores the rest, and so do we (left at their defaults, pid 1 of a
# namespace ignores them).
_TERMINATING = (1, 2, 3, 4, 5, 6, 15, 16, 31)


def _exit_on_signal(number: int, _frame: object) -> None:
    os._exit(128 + number)


def reset_signals() -> None:
    """Dispositions for the wait on the exec fifo and for the user's program.

    Python ignores SIGPIPE and SIGXFSZ, and ignored signals survive exec: restore them. As pid 1
    of its namespace, init would ignore any signal left at its default action (the kernel
    protects a namespace's init), so `kill` of a created container would do nothing; runc's
    init dies of it. Handlers that exit make ours die too, and exec resets handled signals to
    their defaults for the user's program.
    """
    for number in range(1, _signal.NSIG):
        try:
            if _signal.getsignal(number) in (_signal.SIG_IGN, _signal.default_int_handler):
                _signal.signal(number, _SIG_DFL)
        except (OSError, ValueError):
            continue
    for number in _TERMINATING:
        try:
            _signal.signal(number, _exit_on_signal)
        except (OSError, ValueError):
            continue
