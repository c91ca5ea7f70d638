"""linux.seccomp: the spec checks, the host probe, and the BPF libseccomp exports for pyrun.

The exported programs are run by a small classic-BPF interpreter (``evaluate``) against
seccomp_data built here, so each test states what the kernel would answer for a syscall
(number, architecture, arguments), not how libseccomp happened to lay the program out. One
test loads a filter for real, in a forked child with no_new_privs (no root needed).
"""

from __future__ import annotations

import copy
import ctypes
import json
import operator
import os
import struct
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import LinuxError, SpecError
from runtime.lifecycle.bundle import load_bundle
from runtime.lifecycle.specgen import default_config, default_seccomp
from runtime.linux import seccomp as filters
from runtime.linux.seccomp import (
    ACTIONS,
    FILTER_FLAG_LOG,
    FILTER_FLAG_SPEC_ALLOW,
    FILTER_FLAG_TSYNC,
    compile_filter,
    decode,
    enosys_stub,
)
from runtime.spec import parse_config

X86_64 = 0xC000003E
I386 = 0x40000003
AARCH64 = 0xC00000B7
ARM = 0x40000028
X32_BIT = 0x40000000

ALLOW = ACTIONS["SCMP_ACT_ALLOW"]
KILL_THREAD = 0
KILL_PROCESS = 0x80000000
TRAP = 0x00030000
LOG = 0x7FFC0000


def errno(value: int) -> int:
    return 0x00050000 | value


def trace(value: int) -> int:
    return 0x7FF00000 | value


ENOSYS = errno(38)
EPERM = errno(1)

# x86_64 / i386 / aarch64 syscall numbers used below
NR = {
    "read": 0,
    "write": 1,
    "socket": 41,
    "clone": 56,
    "mkdir": 83,
    "personality": 135,
    "arch_prctl": 158,
    "mount": 165,
    "unshare": 272,
    "mkdirat": 258,
    "clone3": 435,
    "futex_waitv": 449,
    "fchmodat2": 452,
}
I386_MKDIR = 39
AARCH64_MKDIRAT = 34
AARCH64_MOUNT = 40


# -- a classic BPF interpreter over struct seccomp_data ---------------------------------------


def seccomp_data(nr: int, arch: int = X86_64, args: tuple[int, ...] = ()) -> bytes:
    full = list(args) + [0] * (6 - len(args))
    return struct.pack("=iIQ6Q", nr, arch, 0x1000, *full)


ALU = {
    0x00: operator.add,
    0x10: operator.sub,
    0x20: operator.mul,
    0x40: operator.or_,
    0x50: operator.and_,
    0x60: operator.lshift,
    0x70: operator.rshift,
    0x80: lambda value, _: -value,
    0xA0: operator.xor,
}


def evaluate(program: bytes, nr: int, arch: int = X86_64, args: tuple[int, ...] = ()) -> int:
    """What a classic BPF seccomp program returns for one syscall."""
    data = seccomp_data(nr, arch, args)
    code = decode(program)
    acc = index_reg = 0
    memory = [0] * 16
    pc = 0
    for _step in range(100_000):
        op, jt, jf, k = code[pc]
        pc += 1
        kind = op & 0x07
        if kind == 0x00:  # LD
            mode = op & 0xE0
            assert op & 0x18 == 0, "only 32-bit loads in seccomp"
            if mode == 0x20:
                acc = struct.unpack_from("=I", data, k)[0]
            elif mode == 0x00:
                acc = k
            elif mode == 0x60:
                acc = memory[k]
            else:
                raise AssertionError(f"load mode {mode:#x}")
        elif kind == 0x01:  # LDX
            index_reg = memory[k] if op & 0xE0 == 0x60 else k
        elif kind == 0x02:  # ST
            memory[k] = acc
        elif kind == 0x03:  # STX
            memory[k] = index_reg
        elif kind == 0x04:  # ALU
            operand = index_reg if op & 0x08 else k
            acc = ALU[op & 0xF0](acc, operand) & 0xFFFFFFFF
        elif kind == 0x05:  # JMP
            jump = op & 0xF0
            if jump == 0x00:
                pc += k
                continue
            operand = index_reg if op & 0x08 else k
            taken = {
                0x10: acc == operand,
                0x20: acc > operand,
                0x30: acc >= operand,
                0x40: bool(acc & operand),
            }[jump]
            pc += jt if taken else jf
        elif kind == 0x06:  # RET
            return acc if op & 0x18 == 0x10 else k
        elif kind == 0x07:  # MISC
            if op & 0xF8 == 0x00:
                index_reg = acc
            else:
                acc = index_reg
    raise AssertionError("the program did not return")


def rule(names: list[str], action: str = "SCMP_ACT_ERRNO", **extra: Any) -> dict[str, Any]:
    return {"names": names, "action": action, **extra}


def profile(*rules: dict[str, Any], default: str = "SCMP_ACT_ALLOW", **extra: Any) -> Any:
    return {"defaultAction": default, "syscalls": list(rules), **extra}


# -- actions -----------------------------------------------------------------------------------


def test_a_denied_syscall_gets_eperm_and_the_rest_runs() -> None:
    program = compile_filter(profile(rule(["mkdir", "mkdirat"]))).program
    assert evaluate(program, NR["mkdir"]) == EPERM
    assert evaluate(program, NR["mkdirat"]) == EPERM
    assert evaluate(program, NR["read"]) == ALLOW


@pytest.mark.parametrize(
    ("action", "errno_ret", "expected"),
    [
        ("SCMP_ACT_KILL", None, KILL_THREAD),
        ("SCMP_ACT_KILL_THREAD", None, KILL_THREAD),
        ("SCMP_ACT_KILL_PROCESS", None, KILL_PROCESS),
        ("SCMP_ACT_TRAP", None, TRAP),
        ("SCMP_ACT_ERRNO", None, errno(1)),
        ("SCMP_ACT_ERRNO", 38, errno(38)),
        ("SCMP_ACT_ERRNO", 0, errno(0)),
        ("SCMP_ACT_TRACE", None, trace(1)),
        ("SCMP_ACT_TRACE", 1234, trace(1234)),
        ("SCMP_ACT_LOG", None, LOG),
    ],
)
def test_every_action_is_what_the_kernel_gets(
    action: str, errno_ret: int | None, expected: int
) -> None:
    extra = {} if errno_ret is None else {"errnoRet": errno_ret}
    program = compile_filter(profile(rule(["mkdir"], action, **extra))).program
    assert evaluate(program, NR["mkdir"]) == expected
    assert evaluate(program, NR["write"]) == ALLOW


@pytest.mark.parametrize(
    ("default", "errno_ret", "expected"),
    [
        ("SCMP_ACT_ERRNO", None, errno(1)),
        ("SCMP_ACT_ERRNO", 13, errno(13)),
        ("SCMP_ACT_KILL_PROCESS", None, KILL_PROCESS),
        ("SCMP_ACT_TRACE", 5, trace(5)),
        ("SCMP_ACT_LOG", None, LOG),
    ],
)
def test_the_default_action_applies_to_everything_not_listed(
    default: str, errno_ret: int | None, expected: int
) -> None:
    extra = {} if errno_ret is None else {"defaultErrnoRet": errno_ret}
    program = compile_filter(
        profile(rule(["read", "write"], "SCMP_ACT_ALLOW"), default=default, **extra)
    ).program
    assert evaluate(program, NR["read"]) == ALLOW
    assert evaluate(program, NR["mkdir"]) == expected


def test_default_errno_ret_is_not_the_errno_of_rules() -> None:
    """runc: defaultErrnoRet is the default action's; a rule without errnoRet gets EPERM."""
    program = compile_filter(
        profile(
            rule(["mkdir"]),
            rule(["read", "write"], "SCMP_ACT_ALLOW"),
            default="SCMP_ACT_ERRNO",
            defaultErrnoRet=38,
        )
    ).program
    assert evaluate(program, NR["mkdir"]) == errno(1)
    assert evaluate(program, NR["unshare"]) == errno(38)


def test_a_rule_with_the_default_action_is_skipped_not_an_error() -> None:
    """libseccomp refuses a rule whose action is the default one; runc skips it silently."""
    program = compile_filter(
        profile(rule(["mkdir"], "SCMP_ACT_ALLOW"), rule(["unshare"], "SCMP_ACT_ERRNO"))
    ).program
    assert evaluate(program, NR["mkdir"]) == ALLOW
    assert evaluate(program, NR["unshare"]) == EPERM
    same = compile_filter(profile(rule(["mkdir"]), default="SCMP_ACT_ERRNO")).program
    assert evaluate(same, NR["mkdir"]) == EPERM


# -- argument conditions ---------------------------------------------------------------------


def arg(index: int, op: str, value: int, value_two: int | None = None) -> dict[str, Any]:
    entry = {"index": index, "op": op, "value": value}
    if value_two is not None:
        entry["valueTwo"] = value_two
    return entry


@pytest.mark.parametrize(
    ("op", "value", "denied", "allowed"),
    [
        ("SCMP_CMP_EQ", 10, [10], [9, 11, 0, 10 + (1 << 32)]),
        ("SCMP_CMP_NE", 10, [0, 9, 11, 1 << 40], [10]),
        ("SCMP_CMP_LT", 10, [0, 9], [10, 11, 1 << 33]),
        ("SCMP_CMP_LE", 10, [0, 10], [11, 1 << 33]),
        ("SCMP_CMP_GT", 10, [11, 1 << 33], [0, 10]),
        ("SCMP_CMP_GE", 10, [10, 11, 1 << 40], [0, 9]),
        ("SCMP_CMP_EQ", 0xFFFFFFFF, [0xFFFFFFFF], [0, 0xFFFFFFFE, 0x1FFFFFFFF]),
        ("SCMP_CMP_GT", 1 << 40, [(1 << 40) + 1, 1 << 41], [1 << 40, 5]),
    ],
)
def test_every_operator_compares_the_full_64_bit_argument(
    op: str, value: int, denied: list[int], allowed: list[int]
) -> None:
    program = compile_filter(profile(rule(["personality"], args=[arg(0, op, value)]))).program
    for number in denied:
        assert evaluate(program, NR["personality"], args=(number,)) == EPERM, (op, number)
    for number in allowed:
        assert evaluate(program, NR["personality"], args=(number,)) == ALLOW, (op, number)


def test_masked_eq_takes_the_mask_from_value_and_the_datum_from_value_two() -> None:
    # socket(domain, type, protocol): deny SOCK_DGRAM (2) whatever the flags in type's high bits
    condition = arg(1, "SCMP_CMP_MASKED_EQ", 0xF, 2)
    program = compile_filter(profile(rule(["socket"], args=[condition]))).program
    sock_dgram_cloexec = 2 | 0o2000000
    assert evaluate(program, NR["socket"], args=(2, 2, 0)) == EPERM
    assert evaluate(program, NR["socket"], args=(2, sock_dgram_cloexec, 0)) == EPERM
    assert evaluate(program, NR["socket"], args=(2, 1, 0)) == ALLOW  # SOCK_STREAM


def test_conditions_on_different_arguments_are_anded() -> None:
    both = [arg(0, "SCMP_CMP_EQ", 2), arg(1, "SCMP_CMP_EQ", 1)]
    program = compile_filter(profile(rule(["socket"], args=both))).program
    assert evaluate(program, NR["socket"], args=(2, 1, 0)) == EPERM
    assert evaluate(program, NR["socket"], args=(2, 2, 0)) == ALLOW
    assert evaluate(program, NR["socket"], args=(10, 1, 0)) == ALLOW


def test_conditions_on_the_same_argument_become_separate_rules_like_runc() -> None:
    """libseccomp cannot AND two tests of one argument; runc adds one rule per condition."""
    two = [arg(0, "SCMP_CMP_EQ", 2), arg(0, "SCMP_CMP_EQ", 10)]
    program = compile_filter(profile(rule(["socket"], args=two))).program
    assert evaluate(program, NR["socket"], args=(2,)) == EPERM
    assert evaluate(program, NR["socket"], args=(10,)) == EPERM
    assert evaluate(program, NR["socket"], args=(1,)) == ALLOW


# -- architectures and names ---------------------------------------------------------------


def test_listed_architectures_get_the_rules_by_their_own_numbers() -> None:
    seccomp = profile(rule(["mkdir"]), architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
    program = compile_filter(seccomp).program
    assert evaluate(program, NR["mkdir"], X86_64) == EPERM
    assert evaluate(program, I386_MKDIR, I386) == EPERM
    assert evaluate(program, NR["mkdir"], I386) == ALLOW  # 83 is symlink on i386
    # an architecture not in the filter: libseccomp's bad-arch action (kill)
    assert evaluate(program, AARCH64_MKDIRAT, AARCH64) == KILL_THREAD


def test_a_name_of_another_architecture_is_handed_to_libseccomp() -> None:
    """arch_prctl is x86 only: on aarch64 its rule just does not exist."""
    seccomp = profile(
        rule(["arch_prctl", "mount"]),
        architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
    )
    program = compile_filter(seccomp).program
    assert evaluate(program, NR["arch_prctl"], X86_64) == EPERM
    assert evaluate(program, AARCH64_MOUNT, AARCH64) == EPERM
    assert evaluate(program, 158, AARCH64) == ALLOW  # 158 is getgroups on aarch64


def test_unknown_names_are_problems_with_their_json_path() -> None:
    seccomp = profile(
        rule(["mkdir", "mkdri"]),
        rule(["arm_fadvise64_64", "socketcall", "mseal", "fchmodat2", "nosuchcall"]),
        rule(["rea\u00efd"]),
    )
    assert filters.problems(seccomp) == [
        "linux.seccomp.syscalls[0].names[1]: unknown syscall 'mkdri'",
        "linux.seccomp.syscalls[1].names[4]: unknown syscall 'nosuchcall'",
        "linux.seccomp.syscalls[2].names[0]: unknown syscall 'rea\u00efd'",
    ]


def test_a_syscall_newer_than_libseccomp_is_skipped_like_runc() -> None:
    """mseal (Linux 6.10) is unknown to libseccomp 2.5: the rule is skipped, not an error."""
    seccomp = profile(rule(["mseal", "mkdir"]))
    assert filters.problems(seccomp) == []
    assert filters.skipped_names(seccomp) == ["mseal"]
    compiled = compile_filter(seccomp)
    assert compiled.skipped == ["mseal"]
    assert evaluate(compiled.program, NR["mkdir"]) == EPERM


@pytest.mark.parametrize(
    "document",
    [
        {"syscalls": "mkdir"},
        {"syscalls": [None, {"names": "mkdir"}, {"names": [1, None]}]},
        {"architectures": "x86", "flags": {"a": 1}},
        {"architectures": ["SCMP_ARCH_NOPE"], "flags": ["SECCOMP_FILTER_FLAG_NOPE"]},
    ],
)
def test_the_host_probe_survives_documents_the_schema_refused(document: Any) -> None:
    assert filters.problems(document) == []


# -- the ENOSYS stub ----------------------------------------------------------------------------


def test_syscalls_newer_than_the_profile_get_enosys_not_the_default_action() -> None:
    seccomp = profile(
        rule(["read", "write", "futex_waitv"], "SCMP_ACT_ALLOW"),
        default="SCMP_ACT_ERRNO",
        architectures=["SCMP_ARCH_X86_64"],
    )
    program = compile_filter(seccomp).program
    assert evaluate(program, NR["read"]) == ALLOW
    assert evaluate(program, NR["mkdir"]) == EPERM  # below the largest named: the default
    assert evaluate(program, NR["futex_waitv"]) == ALLOW
    assert evaluate(program, NR["fchmodat2"]) == ENOSYS  # above it: "not implemented"
    assert evaluate(program, 1000) == ENOSYS


def test_the_stub_covers_x32_by_its_own_numbers() -> None:
    seccomp = profile(
        rule(["read", "clone3"], "SCMP_ACT_ALLOW"),
        default="SCMP_ACT_KILL_PROCESS",
        architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
    )
    program = compile_filter(seccomp).program
    assert evaluate(program, NR["clone3"]) == ALLOW
    assert evaluate(program, NR["fchmodat2"]) == ENOSYS
    assert evaluate(program, X32_BIT | NR["read"]) == ALLOW
    assert evaluate(program, X32_BIT | 600) == ENOSYS  # x32's own range ends at 547
    assert evaluate(program, NR["mkdir"]) == KILL_PROCESS


def test_an_x86_64_only_profile_leaves_x32_calls_to_the_filter() -> None:
    seccomp = profile(
        rule(["read"], "SCMP_ACT_ALLOW"),
        default="SCMP_ACT_ERRNO",
        architectures=["SCMP_ARCH_X86_64"],
    )
    program = compile_filter(seccomp).program
    assert evaluate(program, X32_BIT | 600) == KILL_THREAD  # libseccomp: bad arch


@pytest.mark.parametrize(
    ("default", "extra"),
    [
        ("SCMP_ACT_ALLOW", {}),
        ("SCMP_ACT_LOG", {}),
        ("SCMP_ACT_TRACE", {}),
        ("SCMP_ACT_ERRNO", {"defaultErrnoRet": 38}),
    ],
)
def test_no_stub_when_the_default_is_permissive_or_already_enosys(
    default: str, extra: dict[str, Any]
) -> None:
    seccomp = profile(
        rule(["mkdir"], "SCMP_ACT_KILL"),
        default=default,
        architectures=["SCMP_ARCH_X86_64"],
        **extra,
    )
    program = compile_filter(seccomp).program
    assert all(k != ENOSYS for op, _jt, _jf, k in decode(program) if op == 0x06) or (
        extra.get("defaultErrnoRet") == 38
    )
    assert evaluate(program, NR["fchmodat2"]) == filters.action_value(
        default, extra.get("defaultErrnoRet")
    )


def test_no_stub_without_listed_architectures() -> None:
    """runc only patches the architectures the profile lists."""
    seccomp = profile(rule(["read"], "SCMP_ACT_ALLOW"), default="SCMP_ACT_ERRNO")
    assert evaluate(compile_filter(seccomp).program, NR["fchmodat2"]) == EPERM
    assert enosys_stub({}) == b""


def test_stub_shape() -> None:
    stub = decode(enosys_stub({X86_64: {"SCMP_ARCH_X86_64": 449}, I386: {"SCMP_ARCH_X86": 450}}))
    assert stub[0] == (0x20, 0, 0, 4)  # load seccomp_data.arch
    assert [(op, k) for op, _jt, _jf, k in stub[1:3]] == [(0x15, I386), (0x15, X86_64)]
    returns = [k for op, _jt, _jf, k in stub if op == 0x06]
    assert returns == [ENOSYS, ENOSYS]
    assert (0x25, 449) in [(op, k) for op, _jt, _jf, k in stub]
    # every jump lands inside the stub or exactly at its end (the filter)
    for index, (op, jt, jf, k) in enumerate(stub):
        if op == 0x05:
            assert index + 1 + k <= len(stub)
        elif op & 0x07 == 0x05:
            assert index + 1 + max(jt, jf) < len(stub)


# -- flags -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (None, FILTER_FLAG_SPEC_ALLOW),
        ([], 0),
        (["SECCOMP_FILTER_FLAG_TSYNC"], FILTER_FLAG_TSYNC),
        (["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"], 3),
        (["SECCOMP_FILTER_FLAG_SPEC_ALLOW"], FILTER_FLAG_SPEC_ALLOW),
        (
            [
                "SECCOMP_FILTER_FLAG_TSYNC",
                "SECCOMP_FILTER_FLAG_LOG",
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            ],
            FILTER_FLAG_TSYNC | FILTER_FLAG_LOG | FILTER_FLAG_SPEC_ALLOW,
        ),
    ],
)
def test_flags_become_seccomp2_flags(flags: list[str] | None, expected: int) -> None:
    seccomp = profile(rule(["mkdir"]))
    if flags is not None:
        seccomp["flags"] = flags
    assert filters.problems(seccomp) == []
    assert compile_filter(seccomp).flags == expected


# -- loading for real ------------------------------------------------------------------------


def test_the_seam_loads_the_program_and_the_kernel_enforces_it() -> None:
    """In a forked child with no_new_privs (so no CAP_SYS_ADMIN is needed)."""
    from runtime.linux.syscalls import PR_SET_NO_NEW_PRIVS, Syscalls

    compiled = compile_filter(profile(rule(["mkdir", "mkdirat"], errnoRet=38)))
    target = f"/tmp/pyrun-seccomp-unit-{os.getpid()}"
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            sys = Syscalls()
            sys.prctl(PR_SET_NO_NEW_PRIVS, 1)
            sys.load_seccomp(compiled.program, compiled.flags)
            try:
                os.mkdir(target)
            except OSError as err:
                code = 10 if err.errno == 38 else 11
            with open("/proc/self/status") as handle:
                status = handle.read()
            if "Seccomp:\t2" not in status:
                code = 12
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 10
    assert not os.path.exists(target)


def test_a_bad_program_is_a_linux_error() -> None:
    from runtime.errors import LinuxError
    from runtime.linux.syscalls import Syscalls

    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            Syscalls().load_seccomp(struct.pack("=HBBI", 0xFFFF, 0, 0, 0), 0)
        except LinuxError as err:
            code = 10 if err.errno in (13, 22) and "seccomp" in err.message else 11
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 10


# -- the spec layer's checks --------------------------------------------------------------------


def config_with(seccomp: Any) -> bytes:
    config = default_config()
    config["linux"]["seccomp"] = seccomp
    return json.dumps(config).encode()


def problems_of(seccomp: Any) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_config(config_with(seccomp), "config.json")
    return caught.value.problems


def test_every_valid_action_operator_and_flag_is_accepted() -> None:
    rules = [
        rule(["mkdir"], action)
        for action in ACTIONS
        if action not in ("SCMP_ACT_ALLOW", "SCMP_ACT_NOTIFY")
    ]
    rules += [
        rule(["personality"], "SCMP_ACT_ERRNO", errnoRet=4094, args=[arg(0, op, 7, 7)])
        for op in filters.OPERATORS
    ]
    little_endian = [
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_ARM",
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_MIPSEL",
        "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32",
        "SCMP_ARCH_PPC64LE",
        "SCMP_ARCH_RISCV64",
    ]
    seccomp = profile(
        *rules,
        architectures=little_endian,
        flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"],
        defaultErrnoRet=None,
    )
    del seccomp["defaultErrnoRet"]
    config = parse_config(config_with(seccomp), "config.json")
    assert config["linux"]["seccomp"]["syscalls"][-1]["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"
    assert filters.problems(seccomp) == []
    program = compile_filter(seccomp).program
    # EQ 7 or NE 7 covers every value; of mkdir's conflicting actions the strictest wins
    assert evaluate(program, NR["personality"], args=(7,)) == errno(4094)
    assert evaluate(program, NR["personality"], args=(1 << 35,)) == errno(4094)
    assert evaluate(program, NR["mkdir"]) == KILL_THREAD
    assert evaluate(program, AARCH64_MKDIRAT, AARCH64) == ALLOW  # no mkdir on aarch64


def test_bad_values_are_refused_together_with_clear_messages() -> None:
    seccomp = profile(
        rule(["mkdir"], "SCMP_ACT_ALLOW", errnoRet=1),
        rule(["mkdir"], "SCMP_ACT_ERRNO", errnoRet=4095),
        rule(["mkdir"], "SCMP_ACT_TRACE", errnoRet=70000),
        rule(["", "read"], "SCMP_ACT_KILL", args=[arg(6, "SCMP_CMP_EQ", 1)]),
        rule(["write"], "SCMP_ACT_NOTIFY"),
        default="SCMP_ACT_KILL",
        defaultErrnoRet=1,
        flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        listenerPath="/run/agent.sock",
    )
    assert problems_of(seccomp) == [
        "linux.seccomp.defaultErrnoRet: is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, "
        "not with SCMP_ACT_KILL",
        "linux.seccomp.syscalls[0].errnoRet: is only valid with SCMP_ACT_ERRNO or "
        "SCMP_ACT_TRACE, not with SCMP_ACT_ALLOW",
        "linux.seccomp.syscalls[1].errnoRet: must be from 0 to 4094 with SCMP_ACT_ERRNO, not 4095",
        "linux.seccomp.syscalls[2].errnoRet: must be from 0 to 65535 with SCMP_ACT_TRACE, "
        "not 70000",
        "linux.seccomp.syscalls[3].names[0]: must name a syscall, not ''",
        "linux.seccomp.syscalls[3].args[0].index: a syscall has 6 arguments (index 0 to 5), "
        "not index 6",
        "linux.seccomp.syscalls[4].action: SCMP_ACT_NOTIFY is not supported by pyrun "
        "(no seccomp agent hand-off)",
        "linux.seccomp.flags[0]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs an "
        "SCMP_ACT_NOTIFY rule, which pyrun does not support",
    ]


def test_notify_as_default_action_is_refused() -> None:
    assert problems_of(profile(default="SCMP_ACT_NOTIFY", listenerPath="/run/a.sock")) == [
        "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"
    ]


def test_schema_catches_unknown_actions_operators_architectures_and_flags() -> None:
    seccomp = profile(
        rule(["mkdir"], "SCMP_ACT_NOPE", args=[arg(0, "SCMP_CMP_NOPE", 1)]),
        architectures=["x86_64"],
        flags=["TSYNC"],
    )
    found = "\n".join(problems_of(seccomp))
    for where in (
        "linux.seccomp.syscalls[0].action",
        "linux.seccomp.syscalls[0].args[0].op",
        "linux.seccomp.architectures[0]",
        "linux.seccomp.flags[0]",
    ):
        assert where in found


def make_bundle(tmp_path: Path, config: dict[str, Any]) -> Path:
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_unknown_names_fail_the_bundle_with_every_other_problem(tmp_path: Path) -> None:
    config = default_config()
    config["linux"]["seccomp"] = profile(rule(["mkdir", "frobnicate"]), rule(["bogus_call"]))
    config["process"]["cwd"] = "relative"  # a spec problem: reported in the same error
    with pytest.raises(SpecError) as caught:
        load_bundle(str(make_bundle(tmp_path, config)))
    problems = caught.value.problems
    assert "linux.seccomp.syscalls[0].names[1]: unknown syscall 'frobnicate'" in problems
    assert "linux.seccomp.syscalls[1].names[0]: unknown syscall 'bogus_call'" in problems
    assert any(p.startswith("process.cwd") for p in problems), problems


def test_unknown_names_are_host_problems_of_a_valid_config(tmp_path: Path) -> None:
    config = default_config()
    config["linux"]["seccomp"] = profile(rule(["frobnicate"]))
    with pytest.raises(SpecError) as caught:
        load_bundle(str(make_bundle(tmp_path, config)))
    assert caught.value.problems == [
        "linux.seccomp.syscalls[0].names[0]: unknown syscall 'frobnicate'"
    ]


# -- Docker's default profile ----------------------------------------------------------------


def test_pyrun_spec_carries_dockers_profile_for_this_machine() -> None:
    for rootless in (False, True):
        seccomp = default_config(rootless)["linux"]["seccomp"]
        assert seccomp == default_seccomp()
    seccomp = default_seccomp("x86_64")
    assert seccomp["defaultAction"] == "SCMP_ACT_ERRNO"
    assert seccomp["defaultErrnoRet"] == 1
    assert seccomp["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = [name for entry in seccomp["syscalls"] for name in entry["names"]]
    assert "arch_prctl" in names and "chroot" in names  # amd64, CAP_SYS_CHROOT
    for absent in ("mount", "unshare", "setns", "reboot", "bpf", "open_by_handle_at"):
        assert absent not in names  # they need capabilities Docker does not grant
    arm = default_seccomp("aarch64")
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    arm_names = [name for entry in arm["syscalls"] for name in entry["names"]]
    assert "arch_prctl" not in arm_names and "set_tls" in arm_names
    other = default_seccomp("riscv64")
    assert other["architectures"] == [] and other["syscalls"] == seccomp["syscalls"][:-2]


def test_dockers_profile_compiles_and_decides_like_docker() -> None:
    seccomp = default_seccomp("x86_64")
    assert filters.problems(seccomp) == []
    program = compile_filter(seccomp).program
    clone_newuser = 0x10000000
    thread_flags = 0x003D0F00  # CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|...
    cases = [
        (NR["read"], (), ALLOW),
        (NR["mkdir"], (), ALLOW),
        (NR["mount"], (), EPERM),
        (NR["unshare"], (), EPERM),
        (NR["clone"], (thread_flags,), ALLOW),
        (NR["clone"], (clone_newuser | 17,), EPERM),
        (NR["clone3"], (), ENOSYS),  # the profile says so, for glibc to fall back to clone
        (NR["personality"], (8,), ALLOW),
        (NR["personality"], (0x0400000,), EPERM),
        (NR["socket"], (2, 1, 0), ALLOW),
        (NR["socket"], (40, 1, 0), EPERM),  # AF_VSOCK
        (NR["arch_prctl"], (), ALLOW),
        (NR["fchmodat2"], (), ENOSYS),  # newer than the profile
        (I386_MKDIR, (), ALLOW),
    ]
    for nr, args, expected in cases:
        arch = I386 if nr == I386_MKDIR else X86_64
        assert evaluate(program, nr, arch, args) == expected, (nr, args)


def test_dockers_arm64_profile_compiles_on_any_host() -> None:
    program = compile_filter(default_seccomp("aarch64")).program
    assert evaluate(program, AARCH64_MKDIRAT, AARCH64) == ALLOW
    assert evaluate(program, AARCH64_MOUNT, AARCH64) == EPERM
    assert evaluate(program, 0x0F0005, ARM) == ALLOW  # ARM's private set_tls


def test_the_data_file_is_what_pyrun_spec_writes(tmp_path: Path) -> None:
    from runtime.lifecycle.specgen import write_spec

    path = write_spec(str(tmp_path))
    written = json.loads(Path(path).read_text())
    assert written["linux"]["seccomp"] == default_seccomp()
    data = json.loads(
        (Path(filters.__file__).parents[1] / "lifecycle" / "seccomp_default.json").read_text()
    )
    assert set(data) >= {"defaultAction", "architectures", "syscalls", "archSyscalls"}
    assert (
        copy.deepcopy(data["syscalls"])
        == written["linux"]["seccomp"]["syscalls"][: len(data["syscalls"])]
    )


def test_ctypes_struct_matches_scmp_arg_cmp() -> None:
    assert ctypes.sizeof(filters._ArgCmp) == 24


def test_architectures_of_another_byte_order_are_a_host_problem() -> None:
    """libseccomp puts only architectures of one byte order in a filter (runc fails at
    create's end with "error adding architecture"; pyrun before anything exists)."""
    seccomp = profile(
        rule(["mkdir"]),
        architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_S390X", "SCMP_ARCH_X86", "SCMP_ARCH_PPC"],
    )
    machine = os.uname().machine
    assert filters.problems(seccomp) == [
        f"linux.seccomp.architectures[1]: SCMP_ARCH_S390X: its byte order is not this "
        f"machine's ({machine})",
        f"linux.seccomp.architectures[3]: SCMP_ARCH_PPC: its byte order is not this "
        f"machine's ({machine})",
    ]


def test_rules_libseccomp_cannot_combine_are_found_before_create() -> None:
    """The same conditions for one syscall with two actions: libseccomp says EEXIST."""
    same = [arg(0, "SCMP_CMP_EQ", 1)]
    seccomp = profile(
        rule(["personality", "mkdir"], args=same),
        rule(["mkdir"], "SCMP_ACT_KILL"),
        rule(["personality"], "SCMP_ACT_KILL", args=same),
    )
    assert filters.problems(seccomp) == []
    assert filters.conflicts(seccomp) == [
        "linux.seccomp.syscalls[2]: libseccomp refuses its rule for 'personality' after an "
        "earlier rule for it with the same conditions and another action (file exists)"
    ]
    with pytest.raises(LinuxError):
        compile_filter(seccomp)
    # the same rules with one action, or different conditions, are fine
    seccomp["syscalls"][2]["action"] = "SCMP_ACT_ERRNO"
    assert filters.conflicts(seccomp) == []
    seccomp["syscalls"][2]["args"] = [arg(0, "SCMP_CMP_EQ", 2)]
    seccomp["syscalls"][2]["action"] = "SCMP_ACT_KILL"
    assert filters.conflicts(seccomp) == []
    assert filters.conflicts(default_seccomp()) == []


def test_conflicts_are_host_problems_of_the_bundle(tmp_path: Path) -> None:
    config = default_config()
    same = [arg(0, "SCMP_CMP_EQ", 1)]
    config["linux"]["seccomp"] = profile(
        rule(["personality"], args=same, errnoRet=1), rule(["personality"], args=same, errnoRet=2)
    )
    with pytest.raises(SpecError) as caught:
        load_bundle(str(make_bundle(tmp_path, config)))
    assert caught.value.problems == [
        "linux.seccomp.syscalls[1]: libseccomp refuses its rule for 'personality' after an "
        "earlier rule for it with the same conditions and another action (file exists)"
    ]


@pytest.mark.parametrize("also_invalid", [False, True])
def test_pyrun_validate_reports_unknown_names(tmp_path: Path, also_invalid: bool) -> None:
    from runtime.lifecycle.validate import validate

    config = default_config()
    config["linux"]["seccomp"]["syscalls"].append(rule(["nosuchcall"]))
    if also_invalid:
        config["process"]["cwd"] = "relative"
    report, valid = validate(str(make_bundle(tmp_path, config)))
    assert not valid
    index = len(config["linux"]["seccomp"]["syscalls"]) - 1
    assert f"linux.seccomp.syscalls[{index}].names[0]: unknown syscall 'nosuchcall'" in report
    assert ("process.cwd" in report) is also_invalid
