"""linux.seccomp on real containers, each case run by runc and by pyrun from the same bundle.

Both runtimes must agree on the exit code and on what the container printed; the cases then
state what that is (the error text of the refused syscall, the signal, the status line). The
bundles use busybox, plus the host's Python (``/usr`` bound read-only) where a raw syscall
number is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Bundles, Result, Runtime, base_config

# The host's Python, under /usr (bound into the container): the venv's base interpreter
# (Debian's /usr/bin/python3.11, see the Makefile), else Debian's python3.
_BASE = os.path.realpath(sys.executable)
PYTHON = _BASE if _BASE.startswith("/usr/") else "/usr/bin/python3"

EPERM_TEXT = "Operation not permitted"
ENOSYS_TEXT = "Function not implemented"
SIGSYS_EXIT = 128 + 31


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def with_seccomp(args: list[str], seccomp: dict[str, Any] | None, **process: Any) -> dict[str, Any]:
    config = base_config(args)
    if seccomp is None:
        config["linux"].pop("seccomp", None)
    else:
        config["linux"]["seccomp"] = seccomp
    config["process"].update(process)
    return config


def deny(*names: str, action: str = "SCMP_ACT_ERRNO", **extra: Any) -> dict[str, Any]:
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": list(names), "action": action, **extra}],
    }


def run_both(pyrun: Runtime, runc: Runtime, bundle: Path, name: str = "c") -> tuple[Result, Result]:
    """``run`` of one bundle by runc, then by pyrun; both must agree on code and output."""
    results = []
    for runtime in (runc, pyrun):
        result = runtime("run", "--bundle", str(bundle), runtime.id(name), timeout=60)
        results.append(result)
    runc_result, pyrun_result = results
    assert pyrun_result.returncode == runc_result.returncode, (runc_result, pyrun_result)
    assert pyrun_result.stdout == runc_result.stdout, (runc_result, pyrun_result)
    assert pyrun_result.stderr == runc_result.stderr, (runc_result, pyrun_result)
    return runc_result, pyrun_result


PER_LINUX32 = {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}
MKDIR = sh("mkdir /dev/shm/made && echo made; ls /dev/shm")


def test_without_a_filter_mkdir_works_and_status_says_so(
    pyrun: Runtime, runc: Runtime, bundles: Bundles
) -> None:
    """The control case for the denials below."""
    script = "mkdir /dev/shm/made && echo made; grep ^Seccomp /proc/self/status"
    bundle = bundles.make(config=with_seccomp(sh(script), None))
    _, result = run_both(pyrun, runc, bundle)
    assert result.returncode == 0
    assert result.stdout == "made\nSeccomp:\t0\nSeccomp_filters:\t0\n"


def test_mkdir_denied_with_eperm(pyrun: Runtime, runc: Runtime, bundles: Bundles) -> None:
    bundle = bundles.make(config=with_seccomp(MKDIR, deny("mkdir", "mkdirat")))
    _, result = run_both(pyrun, runc, bundle)
    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr == f"mkdir: can't create directory '/dev/shm/made': {EPERM_TEXT}\n"


def test_mkdir_denied_with_errno_ret_38(pyrun: Runtime, runc: Runtime, bundles: Bundles) -> None:
    bundle = bundles.make(config=with_seccomp(MKDIR, deny("mkdir", "mkdirat", errnoRet=38)))
    _, result = run_both(pyrun, runc, bundle)
    assert result.stderr == f"mkdir: can't create directory '/dev/shm/made': {ENOSYS_TEXT}\n"


def test_the_status_line_shows_one_filter(pyrun: Runtime, runc: Runtime, bundles: Bundles) -> None:
    config = with_seccomp(["grep", "^Seccomp", "/proc/self/status"], deny("mkdir"))
    _, result = run_both(pyrun, runc, bundles.make(config=config))
    assert result.stdout == "Seccomp:\t2\nSeccomp_filters:\t1\n"


def test_personality_denied_only_for_one_argument(
    pyrun: Runtime, runc: Runtime, bundles: Bundles
) -> None:
    """personality(PER_LINUX32) refused, personality(PER_LINUX) allowed."""
    seccomp = deny("personality", args=[{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}])
    script = "linux32 true; echo linux32=$?; linux64 true; echo linux64=$?"
    _, result = run_both(pyrun, runc, bundles.make(config=with_seccomp(sh(script), seccomp)))
    assert result.stdout == "linux32=1\nlinux64=0\n"
    assert result.stderr == f"linux32: personality(0x8): {EPERM_TEXT}\n"


@pytest.mark.parametrize(
    "condition",
    [
        {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},  # AF_INET
        {"index": 1, "value": 0xF, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"},  # SOCK_STREAM
    ],
    ids=["af-inet", "masked-sock-stream"],
)
def test_socket_denied_for_one_family_or_type(
    pyrun: Runtime, runc: Runtime, bundles: Bundles, condition: dict[str, Any]
) -> None:
    """nc's TCP socket is refused; ip's netlink socket (AF_NETLINK, SOCK_RAW) is not."""
    script = "nc 127.0.0.1 1; echo nc=$?; ip link show lo >/dev/null; echo ip=$?"
    seccomp = deny("socket", args=[condition])
    _, result = run_both(pyrun, runc, bundles.make(config=with_seccomp(sh(script), seccomp)))
    assert result.stdout == "nc=1\nip=0\n"
    assert result.stderr == f"nc: socket: {EPERM_TEXT}\n"


def test_conditions_on_two_arguments_are_anded(
    pyrun: Runtime, runc: Runtime, bundles: Bundles
) -> None:
    both = [
        {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},  # AF_INET ...
        {"index": 1, "value": 0xF, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ"},  # ... SOCK_RAW
    ]
    script = "nc 127.0.0.1 1 2>/dev/null; echo nc=$?"  # AF_INET but SOCK_STREAM: refused later
    _, result = run_both(
        pyrun, runc, bundles.make(config=with_seccomp(sh(script), deny("socket", args=both)))
    )
    assert result.stdout == "nc=1\n"  # connection refused, not EPERM
    checked = with_seccomp(sh("nc 127.0.0.1 1"), deny("socket", args=both))
    _, result = run_both(pyrun, runc, bundles.make(config=checked), "refused")
    assert "Connection refused" in result.stderr


def allow_list(without: set[str]) -> list[str]:
    from runtime.lifecycle.specgen import default_seccomp

    profile = default_seccomp()
    return [n for n in profile["syscalls"][0]["names"] if n not in without]


def test_default_errno_with_an_allow_list(pyrun: Runtime, runc: Runtime, bundles: Bundles) -> None:
    """Everything not listed fails with defaultErrnoRet: here symlink and mkdir (EACCES)."""
    seccomp = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 13,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {
                "names": allow_list({"symlink", "symlinkat", "mkdir", "mkdirat"}),
                "action": "SCMP_ACT_ALLOW",
            },
            {"names": ["arch_prctl", "clone"], "action": "SCMP_ACT_ALLOW"},
        ],
    }
    script = "echo hello; ln -s / /dev/shm/link; echo ln=$?; mkdir /dev/shm/made; echo mkdir=$?"
    _, result = run_both(pyrun, runc, bundles.make(config=with_seccomp(sh(script), seccomp)))
    assert result.stdout == "hello\nln=1\nmkdir=1\n"
    assert result.stderr == (
        "ln: /dev/shm/link: Permission denied\n"
        "mkdir: can't create directory '/dev/shm/made': Permission denied\n"
    )


@pytest.mark.parametrize(
    "action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"]
)
def test_kill_and_trap_end_the_process_by_sigsys(
    pyrun: Runtime, runc: Runtime, bundles: Bundles, action: str
) -> None:
    config = with_seccomp(["mkdir", "/dev/shm/made"], deny("mkdir", "mkdirat", action=action))
    _, result = run_both(pyrun, runc, bundles.make(config=config))
    assert result.returncode == SIGSYS_EXIT


def test_trace_without_a_tracer_is_enosys(pyrun: Runtime, runc: Runtime, bundles: Bundles) -> None:
    config = with_seccomp(MKDIR, deny("mkdir", "mkdirat", action="SCMP_ACT_TRACE"))
    _, result = run_both(pyrun, runc, bundles.make(config=config))
    assert result.stderr == f"mkdir: can't create directory '/dev/shm/made': {ENOSYS_TEXT}\n"


def kernel_log() -> list[str]:
    return subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout.splitlines()


def audited(before: list[str], code: int, syscall: int = 83) -> list[str]:
    """New kernel log lines of seccomp audit records (type 1326) for mkdir with ``code`` (the
    action without its data: ERRNO is 0x50000)."""
    seen = set(before)
    return [
        line
        for line in kernel_log()
        if line not in seen
        and "type=1326" in line
        and f"syscall={syscall} " in line
        and f"code={code:#x}" in line
    ]


def test_log_allows_the_syscall_and_logs_it(
    pyrun: Runtime, runc: Runtime, bundles: Bundles
) -> None:
    bundle = bundles.make(config=with_seccomp(MKDIR, deny("mkdir", action="SCMP_ACT_LOG")))
    for runtime in (runc, pyrun):
        before = kernel_log()
        result = runtime.ok("run", "--bundle", str(bundle), runtime.id("log"))
        assert result.stdout == "made\nmade\n"
        assert len(audited(before, 0x7FFC0000)) == 1, runtime.binary


@pytest.mark.parametrize(
    ("flags", "logged"),
    [
        (None, 0),
        ([], 0),
        (["SECCOMP_FILTER_FLAG_LOG"], 1),
        (["SECCOMP_FILTER_FLAG_TSYNC"], 0),
        (["SECCOMP_FILTER_FLAG_SPEC_ALLOW"], 0),
        (
            [
                "SECCOMP_FILTER_FLAG_TSYNC",
                "SECCOMP_FILTER_FLAG_LOG",
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            ],
            1,
        ),
    ],
)
def test_flags(
    pyrun: Runtime, runc: Runtime, bundles: Bundles, flags: list[str] | None, logged: int
) -> None:
    """Every flag is accepted and the filter works; with SECCOMP_FILTER_FLAG_LOG the kernel
    logs the ERRNO it returns, which it does not otherwise. runc 1.1.5 refuses any flag
    ("seccomp flags are not yet supported by runc"): it runs only the cases without."""
    seccomp = deny("mkdir")
    if flags is not None:
        seccomp["flags"] = flags
    bundle = bundles.make(config=with_seccomp(MKDIR, seccomp))
    for runtime in (runc, pyrun) if not flags else (pyrun,):
        before = kernel_log()
        result = runtime("run", "--bundle", str(bundle), runtime.id("flags"))
        assert result.returncode == 0, result
        assert result.stderr == f"mkdir: can't create directory '/dev/shm/made': {EPERM_TEXT}\n"
        assert len(audited(before, 0x50000)) == logged, runtime.binary
    if flags:
        refused = runc("run", "--bundle", str(bundle), runc.id("flags"))
        assert "seccomp flags are not yet supported by runc" in refused.stderr, refused


def test_without_no_new_privileges_the_filter_goes_on_before_the_capabilities_drop(
    pyrun: Runtime, runc: Runtime, bundles: Bundles
) -> None:
    """Loading a filter without no_new_privs needs CAP_SYS_ADMIN, which the process (user
    1000, no capabilities) does not have: init loads it before it drops them."""
    config = with_seccomp(
        sh("id -u; mkdir /dev/shm/made; grep -E '^(Seccomp|NoNewPrivs|CapEff)' /proc/self/status"),
        deny("mkdir", "mkdirat"),
        noNewPrivileges=False,
        user={"uid": 1000, "gid": 1000},
        capabilities={},
    )
    _, result = run_both(pyrun, runc, bundles.make(config=config))
    assert result.stdout == (
        "1000\nCapEff:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t2\nSeccomp_filters:\t1\n"
    )
    assert EPERM_TEXT in result.stderr


def test_dockers_default_profile_runs_busybox_and_refuses_namespaces_and_mounts(
    pyrun: Runtime, runc: Runtime, bundles: Bundles
) -> None:
    script = (
        "echo hello; ls / >/dev/null && echo ls; id; ps -o pid,comm | head -2; "
        "chroot / true && echo chroot; linux32 true && echo linux32; "
        "unshare -m true; echo unshare=$?; mount -t tmpfs none /mnt; echo mount=$?; "
        "grep ^Seccomp: /proc/self/status"
    )
    bundle = bundles.make(sh(script))  # pyrun spec's config: Docker's profile
    assert json.loads((bundle / "config.json").read_text())["linux"]["seccomp"]["syscalls"]
    _, result = run_both(pyrun, runc, bundle)
    assert result.returncode == 0
    assert result.stdout == (
        "hello\nls\nuid=0(root) gid=0(root)\nPID   COMMAND\n    1 sh\n"
        "chroot\nlinux32\nunshare=1\nmount=1\nSeccomp:\t2\n"
    )
    assert result.stderr == (
        f"unshare: unshare(0x20000): {EPERM_TEXT}\nmount: permission denied (are you root?)\n"
    )


def python_bundle(bundles: Bundles, code: str, seccomp: dict[str, Any] | None) -> Path:
    """A bundle running the host's Python (``/usr`` bound read-only, /lib -> usr/lib)."""
    config = with_seccomp([PYTHON, "-S", "-c", code], seccomp)
    config["mounts"].append(
        {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]}
    )
    config["root"]["readonly"] = False
    bundle = bundles.make(config=config, own_rootfs=True)
    for name in ("lib", "lib64"):
        os.symlink(f"usr/{name}", bundle / "rootfs" / name)
    return bundle


SYSCALLS = (
    "import ctypes\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "for number in NUMBERS:\n"
    "    result = libc.syscall(number, 0, 0, 0)\n"
    "    print(number, result, ctypes.get_errno() if result < 0 else 0)\n"
)


def test_syscalls_newer_than_the_profile_are_enosys_as_with_runc(
    pyrun: Runtime, runc: Runtime, bundles: Bundles
) -> None:
    """Docker's profile names syscalls up to futex_waitv (449): fchmodat2 (452) and beyond
    get ENOSYS (runc's patched filter), the others the default EPERM; x32 by its own range."""
    if os.uname().machine != "x86_64":
        pytest.skip("syscall numbers of x86_64")
    from runtime.lifecycle.specgen import default_seccomp

    numbers = [452, 500, 1000, 246, 1 << 30 | 452, 1 << 30 | 600]  # 246: kexec_load, denied
    code = SYSCALLS.replace("NUMBERS", repr(numbers))
    _, result = run_both(pyrun, runc, python_bundle(bundles, code, default_seccomp()))
    assert result.stdout.splitlines() == [
        "452 -1 38",
        "500 -1 38",
        "1000 -1 38",
        "246 -1 1",
        f"{1 << 30 | 452} -1 1",
        f"{1 << 30 | 600} -1 38",
    ]


# -- refused before anything exists ------------------------------------------------------------


def assert_nothing_created(runtime: Runtime, container_id: str) -> None:
    result = runtime("state", container_id)
    assert result.returncode != 0 and "does not exist" in result.stderr, result
    assert not os.path.exists(f"{runtime.root}/{container_id}")


def test_an_unknown_syscall_name_fails_create_before_anything_is_made(
    pyrun: Runtime, bundles: Bundles
) -> None:
    seccomp = deny("mkdir", "mkdri")
    seccomp["syscalls"].append({"names": ["getpid", "nosuchcall"], "action": "SCMP_ACT_KILL"})
    config = with_seccomp(["true"], seccomp)
    config["process"]["cwd"] = "relative"
    bundle = bundles.make(config=config)
    cid = pyrun.id("unknown")
    result = pyrun("create", "--bundle", str(bundle), cid)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert "  linux.seccomp.syscalls[0].names[1]: unknown syscall 'mkdri'" in lines
    assert "  linux.seccomp.syscalls[1].names[1]: unknown syscall 'nosuchcall'" in lines
    assert any("process.cwd" in line for line in lines), lines  # reported together
    assert_nothing_created(pyrun, cid)


def test_runc_ignores_what_pyrun_refuses(pyrun: Runtime, runc: Runtime, bundles: Bundles) -> None:
    """runc skips a name it cannot resolve (a debug line) and runs the container."""
    bundle = bundles.make(config=with_seccomp(["true"], deny("mkdir", "mkdri")))
    runc.ok("run", "--bundle", str(bundle), runc.id("typo"))
    cid = pyrun.id("typo")
    result = pyrun("run", "--bundle", str(bundle), cid)
    assert result.returncode == 1
    assert "linux.seccomp.syscalls[0].names[1]: unknown syscall 'mkdri'" in result.stderr
    assert_nothing_created(pyrun, cid)


def test_a_syscall_newer_than_libseccomp_is_skipped_with_a_debug_line(
    pyrun: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    bundle = bundles.make(config=with_seccomp(MKDIR, deny("mkdir", "mkdirat", "mseal")))
    log = tmp_path / "log.json"
    result = pyrun(
        "run",
        "--bundle",
        str(bundle),
        pyrun.id("newer"),
        global_args=["--debug", "--log", str(log), "--log-format", "json"],
    )
    assert result.returncode == 0, result
    assert EPERM_TEXT in result.stderr
    messages = [json.loads(line)["msg"] for line in log.read_text().splitlines()]
    assert "unknown seccomp syscall 'mseal' ignored" in messages


@pytest.mark.parametrize(
    ("seccomp", "message"),
    [
        (
            deny("mkdir", action="SCMP_ACT_ALLOW", errnoRet=1) | {"defaultAction": "SCMP_ACT_LOG"},
            "linux.seccomp.syscalls[0].errnoRet: is only valid with SCMP_ACT_ERRNO or "
            "SCMP_ACT_TRACE, not with SCMP_ACT_ALLOW",
        ),
        (
            deny("mkdir", action="SCMP_ACT_NOTIFY") | {"listenerPath": "/run/agent.sock"},
            "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY is not supported by pyrun",
        ),
        (
            deny("mkdir", args=[{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]),
            "linux.seccomp.syscalls[0].args[0].index: a syscall has 6 arguments",
        ),
        (
            deny("mkdir") | {"architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_S390X"]},
            "linux.seccomp.architectures[1]: SCMP_ARCH_S390X: its byte order is not",
        ),
        (
            deny("mkdir", action="SCMP_ACT_BOGUS"),
            "linux.seccomp.syscalls[0].action",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["personality"], "action": action, "args": [PER_LINUX32]}
                    for action in ("SCMP_ACT_ERRNO", "SCMP_ACT_KILL")
                ],
            },
            "linux.seccomp.syscalls[1]: libseccomp refuses its rule for 'personality' after an "
            "earlier rule for it with the same conditions and another action (file exists)",
        ),
    ],
    ids=["errno-with-allow", "notify", "arg-index", "byte-order", "schema", "conflict"],
)
def test_bad_profiles_fail_create_with_a_clear_message(
    pyrun: Runtime, bundles: Bundles, seccomp: dict[str, Any], message: str
) -> None:
    bundle = bundles.make(config=with_seccomp(["true"], seccomp))
    cid = pyrun.id("bad")
    result = pyrun("create", "--bundle", str(bundle), cid)
    assert result.returncode == 1
    assert message in result.stderr, result
    assert_nothing_created(pyrun, cid)


def test_a_filter_too_big_for_the_kernel_fails_create_and_is_undone(
    pyrun: Runtime, bundles: Bundles
) -> None:
    """Found only by compiling (in init, before pivot_root): create fails, removes all."""
    seccomp = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}],
            }
            for value in range(5000)
        ],
    }
    bundle = bundles.make(config=with_seccomp(["true"], seccomp))
    cid = pyrun.id("big")
    result = pyrun("create", "--bundle", str(bundle), cid)
    assert result.returncode == 1
    assert "more than the kernel's 4096" in result.stderr, result
    assert_nothing_created(pyrun, cid)
