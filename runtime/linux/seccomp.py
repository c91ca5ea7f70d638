"""``linux.seccomp`` -> a BPF program, built by libseccomp (ctypes) and exported, not loaded.

Why exported: the container's init compiles the filter before pivot_root (afterwards the host's
``libseccomp.so.2`` is out of reach) and loads it at the very end through the syscall seam
(``Syscalls.load_seccomp``), after everything else init does. libseccomp is opened lazily, only
for a config that has ``linux.seccomp``.

runc's semantics (libcontainer/seccomp/seccomp_linux.go and patchbpf), kept here:

* one rule per name; a rule whose action equals the default action is skipped (libseccomp
  refuses it); ``errnoRet`` defaults to EPERM for a rule, ``defaultErrnoRet`` applies to the
  default action only;
* the conditions of a rule are ANDed in one libseccomp rule, unless two of them test the same
  argument: then each condition becomes a rule of its own (runc's "old behaviour");
* a name libseccomp resolves only for other architectures is handed to it anyway (it skips the
  architectures that lack it, and maps socket calls on x86 to socketcall); a name this
  libseccomp does not know at all is skipped (a syscall newer than it, runc's debug log) --
  but a name that exists on NO architecture (not in libseccomp and not in ``NEWER_SYSCALLS``)
  is a configuration error, reported by ``problems`` before create makes anything;
* when the default action is not permissive (not ALLOW, LOG or TRACE), a stub is prepended
  that returns ENOSYS for syscall numbers above the largest one the profile names, for each
  listed architecture: a syscall newer than the profile looks unimplemented (programs then
  fall back), not forbidden;
* ``flags`` absent means SECCOMP_FILTER_FLAG_SPEC_ALLOW where the kernel has it (runc >= 1.2
  and crun); ``[]`` none. TSYNC is passed on (harmless: init is single-threaded; runc drops it).

Where pyrun is stricter than runc, it says so before create makes anything (``problems`` and
``conflicts``, the host probes of runtime/lifecycle/bundle.py): a name that exists nowhere,
an architecture of another byte order, rules libseccomp cannot combine. runc fails at the end
of create for the last two and ignores the first. SCMP_ACT_NOTIFY is refused by the spec layer
(runtime/spec/semantic.py): pyrun does not hand a listener to a seccomp agent.

Where init loads it (runtime/lifecycle/init.py): without noNewPrivileges before the
capabilities are dropped (loading needs CAP_SYS_ADMIN then), with it right before the execve,
after the exec fifo and the startContainer hooks (runc loads it before the fifo wait).
"""

from __future__ import annotations

import ctypes
import os
import struct

from runtime.errors import LinuxError, PyrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

LIBRARY = "libseccomp.so.2"

# libseccomp's action values (seccomp.h); ERRNO and TRACE carry 16 bits of data.
ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": 0x00000000,  # = KILL_THREAD
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
    "SCMP_ACT_NOTIFY": 0x7FC00000,
}
WITH_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
# Actions after which the ENOSYS stub is not wanted (patchbpf's isAllowAction).
PERMISSIVE = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE")
EPERM = 1
ENOSYS = 38

# enum scmp_compare
OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# OCI name -> (libseccomp's name, AUDIT_ARCH_* the kernel reports in seccomp_data.arch).
# x32 shares x86_64's AUDIT_ARCH; its syscall numbers carry bit 30 (__X32_SYSCALL_BIT).
ARCHITECTURES: dict[str, tuple[str, int]] = {
    "SCMP_ARCH_X86": ("x86", 0x40000003),
    "SCMP_ARCH_X86_64": ("x86_64", 0xC000003E),
    "SCMP_ARCH_X32": ("x32", 0xC000003E),
    "SCMP_ARCH_ARM": ("arm", 0x40000028),
    "SCMP_ARCH_AARCH64": ("aarch64", 0xC00000B7),
    "SCMP_ARCH_MIPS": ("mips", 0x00000008),
    "SCMP_ARCH_MIPS64": ("mips64", 0x80000008),
    "SCMP_ARCH_MIPS64N32": ("mips64n32", 0xA0000008),
    "SCMP_ARCH_MIPSEL": ("mipsel", 0x40000008),
    "SCMP_ARCH_MIPSEL64": ("mipsel64", 0xC0000008),
    "SCMP_ARCH_MIPSEL64N32": ("mipsel64n32", 0xE0000008),
    "SCMP_ARCH_PPC": ("ppc", 0x00000014),
    "SCMP_ARCH_PPC64": ("ppc64", 0x80000015),
    "SCMP_ARCH_PPC64LE": ("ppc64le", 0xC0000015),
    "SCMP_ARCH_S390": ("s390", 0x00000016),
    "SCMP_ARCH_S390X": ("s390x", 0x80000016),
    "SCMP_ARCH_PARISC": ("parisc", 0x0000000F),
    "SCMP_ARCH_PARISC64": ("parisc64", 0x8000000F),
    "SCMP_ARCH_RISCV64": ("riscv64", 0xC00000F3),
}
_X32_BIT = 0x40000000

# seccomp(2) filter flags, and the libseccomp attribute that checks this libseccomp and kernel
# support each (None: libseccomp 2.5 has none; the kernel judges at load time).
FILTER_FLAG_TSYNC = 1
FILTER_FLAG_LOG = 2
FILTER_FLAG_SPEC_ALLOW = 4
FILTER_FLAG_NEW_LISTENER = 8
FILTER_FLAG_WAIT_KILLABLE_RECV = 32
FLAGS: dict[str, tuple[int, int | None]] = {
    "SECCOMP_FILTER_FLAG_TSYNC": (FILTER_FLAG_TSYNC, 4),  # SCMP_FLTATR_CTL_TSYNC
    "SECCOMP_FILTER_FLAG_LOG": (FILTER_FLAG_LOG, 6),  # SCMP_FLTATR_CTL_LOG
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (FILTER_FLAG_SPEC_ALLOW, 7),  # SCMP_FLTATR_CTL_SSB
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (FILTER_FLAG_WAIT_KILLABLE_RECV, None),
}
_ATTR_CTL_NNP = 3
_ATTR_CTL_SSB = 7
_ATTR_CTL_OPTIMIZE = 8
_NR_SCMP_ERROR = -1
_EEXIST = 17
_EINVAL = 22
_EDOM = 33

# Linux syscalls newer than libseccomp 2.5's tables (numbers 424 and up, the generic table, plus
# the x86_64 and riscv only ones): a libseccomp that does not know one of these skips it as a
# syscall of a newer kernel. Any other name libseccomp cannot resolve exists nowhere.
NEWER_SYSCALLS = frozenset(
    {
        "pidfd_send_signal", "io_uring_setup", "io_uring_enter", "io_uring_register",
        "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "pidfd_open",
        "clone3", "close_range", "openat2", "pidfd_getfd", "faccessat2", "process_madvise",
        "epoll_pwait2", "mount_setattr", "quotactl_fd", "landlock_create_ruleset",
        "landlock_add_rule", "landlock_restrict_self", "memfd_secret", "process_mrelease",
        "futex_waitv", "set_mempolicy_home_node", "cachestat", "fchmodat2", "map_shadow_stack",
        "futex_wake", "futex_wait", "futex_requeue", "statmount", "listmount",
        "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules", "mseal", "setxattrat",
        "getxattrat", "listxattrat", "removexattrat", "open_tree_attr", "file_getattr",
        "file_setattr", "uretprobe", "uprobe", "riscv_hwprobe", "riscv_flush_icache",
    }
)  # fmt: skip

_lib: ctypes.CDLL | None = None


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp"""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def library() -> ctypes.CDLL:
    """libseccomp, opened once, with the prototypes pyrun uses."""
    global _lib
    if _lib is not None:
        return _lib
    try:
        lib = ctypes.CDLL(LIBRARY, use_errno=True)
    except OSError as err:
        raise PyrunError(
            f"linux.seccomp: cannot load {LIBRARY} ({err}); install libseccomp2"
        ) from None
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.restype = None
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    _lib = lib
    return lib


def action_value(name: str, errno_ret: int | None) -> int:
    """libseccomp's value of an action; ERRNO and TRACE carry ``errno_ret`` (EPERM if None)."""
    value = ACTIONS[name]
    if name in WITH_ERRNO:
        value |= (EPERM if errno_ret is None else errno_ret) & 0xFFFF
    return value


class CompiledFilter:
    """A BPF program (``struct sock_filter`` array, host byte order) and the seccomp(2) flags
    to install it with. ``skipped``: names this libseccomp does not know (newer syscalls)."""

    __slots__ = ("flags", "program", "skipped")

    def __init__(self, program: bytes, flags: int, skipped: list[str]) -> None:
        self.program = program
        self.flags = flags
        self.skipped = skipped

    def __len__(self) -> int:
        return len(self.program) // 8


def kernel_flags(seccomp: Mapping[str, Any]) -> int:
    """The seccomp(2) flags of a profile: ``flags`` as given, SPEC_ALLOW when absent."""
    names = seccomp.get("flags")
    if names is None:
        return FILTER_FLAG_SPEC_ALLOW
    flags = 0
    for name in names:
        flags |= FLAGS[name][0]
    return flags


# -- host probe (create's validation, before anything exists) ------------------------------


def problems(seccomp: Mapping[str, Any]) -> list[str]:
    """Everything this host's libseccomp and kernel refuse in a profile: unknown syscall names,
    architectures and flags this libseccomp does not support. Safe on a document that failed
    validation (create reports these with the schema's problems)."""
    try:
        lib = library()
    except PyrunError as err:
        return [err.message]
    found = _arch_problems(lib, _list(seccomp.get("architectures")))
    found += _flag_problems(lib, _list(seccomp.get("flags")))
    for rule_index, rule in enumerate(_list(seccomp.get("syscalls"))):
        names = _list(rule.get("names")) if isinstance(rule, dict) else []
        for name_index, name in enumerate(names):
            if isinstance(name, str) and name and not _known(lib, name):
                found.append(
                    f"linux.seccomp.syscalls[{rule_index}].names[{name_index}]: "
                    f"unknown syscall {name!r}"
                )
    return found


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def skipped_names(seccomp: Mapping[str, Any]) -> list[str]:
    """Names runc would skip with a debug log: real syscalls this libseccomp does not know."""
    lib = library()
    return [
        name
        for rule in seccomp.get("syscalls", [])
        for name in rule.get("names", [])
        if name in NEWER_SYSCALLS and _resolve(lib, name) == _NR_SCMP_ERROR
    ]


def _known(lib: ctypes.CDLL, name: str) -> bool:
    return _resolve(lib, name) != _NR_SCMP_ERROR or name in NEWER_SYSCALLS


def _resolve(lib: ctypes.CDLL, name: str) -> int:
    try:
        raw = name.encode("ascii")
    except UnicodeEncodeError:
        return _NR_SCMP_ERROR
    return int(lib.seccomp_syscall_resolve_name(raw))


def _arch_problems(lib: ctypes.CDLL, names: list[Any]) -> list[str]:
    """Architectures this libseccomp does not know, or cannot put in one filter with this
    machine's (a filter's architectures share one byte order)."""
    wanted = [(i, n) for i, n in enumerate(names) if isinstance(n, str) and n in ARCHITECTURES]
    if not wanted:
        return []
    ctx = lib.seccomp_init(ACTIONS["SCMP_ACT_ALLOW"])
    if not ctx:
        return ["linux.seccomp: libseccomp could not make a filter (out of memory?)"]
    found = []
    try:
        for index, name in wanted:
            token = lib.seccomp_arch_resolve_name(ARCHITECTURES[name][0].encode())
            result = lib.seccomp_arch_add(ctx, token) if token else -_EINVAL
            if result == -_EDOM:
                reason = f"its byte order is not this machine's ({os.uname().machine})"
            elif result < 0 and result != -_EEXIST:
                reason = f"not supported by this libseccomp ({os.strerror(-result).lower()})"
            else:
                continue
            found.append(f"linux.seccomp.architectures[{index}]: {name}: {reason}")
    finally:
        lib.seccomp_release(ctx)
    return found


def _flag_problems(lib: ctypes.CDLL, names: Iterable[str]) -> list[str]:
    wanted = [
        (i, n) for i, n in enumerate(names) if isinstance(n, str) and FLAGS.get(n, (0, None))[1]
    ]
    if not wanted:
        return []
    ctx = lib.seccomp_init(ACTIONS["SCMP_ACT_ALLOW"])
    if not ctx:
        return ["linux.seccomp: libseccomp could not make a filter (out of memory?)"]
    found = []
    try:
        for index, name in wanted:
            attribute = FLAGS[name][1]
            assert attribute is not None
            result = lib.seccomp_attr_set(ctx, attribute, 1)
            if result < 0:
                found.append(
                    f"linux.seccomp.flags[{index}]: {name} is not supported by this kernel "
                    f"or libseccomp ({os.strerror(-result).lower()})"
                )
    finally:
        lib.seccomp_release(ctx)
    return found


# -- compiling -------------------------------------------------------------------------------


def compile_filter(seccomp: Mapping[str, Any]) -> CompiledFilter:
    """The profile as a BPF program, ready for ``Syscalls.load_seccomp``. The profile has passed
    the spec layer and ``problems``; a libseccomp failure here raises LinuxError."""
    lib = library()
    default_name = seccomp["defaultAction"]
    default = action_value(default_name, seccomp.get("defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise LinuxError("seccomp_init", _EINVAL, default_name)
    skipped: list[str] = []
    try:
        architectures = seccomp.get("architectures") or []
        for arch in architectures:
            token = lib.seccomp_arch_resolve_name(ARCHITECTURES[arch][0].encode())
            result = lib.seccomp_arch_add(ctx, token)
            if result < 0 and result != -_EEXIST:
                raise LinuxError("seccomp_arch_add", -result, arch)
        # pyrun sets no_new_privs itself, where the config asks for it.
        _attr(lib, ctx, _ATTR_CTL_NNP, 0, "no_new_privs off")
        for name in seccomp.get("flags") or []:
            attribute = FLAGS[name][1]
            if attribute is not None:
                _attr(lib, ctx, attribute, 1, name)
        flags = kernel_flags(seccomp)
        if seccomp.get("flags") is None and lib.seccomp_attr_set(ctx, _ATTR_CTL_SSB, 1) < 0:
            flags &= ~FILTER_FLAG_SPEC_ALLOW  # the default, where this kernel has it (runc)
        rules = seccomp.get("syscalls") or []
        if len(rules) > 32:
            # libseccomp's binary tree (runc too); libseccomp <= 2.5.4 misbehaves with 0 rules.
            lib.seccomp_attr_set(ctx, _ATTR_CTL_OPTIMIZE, 2)
        for rule in rules:
            skipped += _add_rule(lib, ctx, rule, default)
        program = _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)
    if default_name not in PERMISSIVE and seccomp.get("defaultErrnoRet") != ENOSYS:
        program = enosys_stub(_last_syscalls(lib, seccomp)) + program
    if len(program) // 8 > 4096:
        raise PyrunError(
            f"linux.seccomp: the filter has {len(program) // 8} BPF instructions, more than "
            "the kernel's 4096"
        )
    return CompiledFilter(program, flags, skipped)


def _attr(lib: ctypes.CDLL, ctx: int, attribute: int, value: int, what: str) -> None:
    result = lib.seccomp_attr_set(ctx, attribute, value)
    if result < 0:
        raise LinuxError("seccomp_attr_set", -result, what)


def _conditions(rule: Mapping[str, Any]) -> list[list[_ArgCmp]]:
    """The rule's condition sets: one set (ANDed), or one set per condition when two of them
    test the same argument (libseccomp cannot AND those; runc adds them as separate rules)."""
    args = rule.get("args") or []
    conditions = [
        _ArgCmp(arg["index"], OPERATORS[arg["op"]], arg["value"], arg.get("valueTwo", 0))
        for arg in args
    ]
    indexes = [arg["index"] for arg in args]
    if len(set(indexes)) == len(indexes):
        return [conditions]
    return [[condition] for condition in conditions]


def _add_rule(
    lib: ctypes.CDLL, ctx: int, rule: Mapping[str, Any], default: int, names: Iterable[str] = ()
) -> list[str]:
    """Add a rule (only ``names`` of it when given); returns the names skipped as unknown."""
    action = action_value(rule["action"], rule.get("errnoRet"))
    if action == default:
        return []  # redundant; libseccomp would refuse it (runc skips it silently)
    groups = _conditions(rule)
    skipped = []
    for name in names or rule["names"]:
        number = _resolve(lib, name)
        if number == _NR_SCMP_ERROR:
            skipped.append(name)  # newer than this libseccomp (problems() refused the rest)
            continue
        for group in groups:
            array = (_ArgCmp * len(group))(*group) if group else None
            result = lib.seccomp_rule_add_array(ctx, action, number, len(group), array)
            if result < 0:
                raise LinuxError("seccomp: adding the rule for syscall", -result, name)
    return skipped


def conflicts(seccomp: Mapping[str, Any]) -> list[str]:
    """Rules libseccomp refuses next to earlier rules for the same syscall (EEXIST: the same
    conditions with another action, or a shorter chain of them), found before create makes
    anything by adding just the rules of syscalls named more than once to a scratch filter.
    For a profile the spec layer and ``problems`` accepted."""
    lib = library()
    default = action_value(seccomp["defaultAction"], seccomp.get("defaultErrnoRet"))
    rules = seccomp.get("syscalls") or []
    counts: dict[str, int] = {}
    for rule in rules:
        if action_value(rule["action"], rule.get("errnoRet")) != default:
            for name in set(rule["names"]):
                counts[name] = counts.get(name, 0) + 1
    repeated = {name for name, count in counts.items() if count > 1}
    if not repeated:
        return []
    ctx = lib.seccomp_init(default)
    if not ctx:
        return ["linux.seccomp: libseccomp could not make a filter (out of memory?)"]
    found = []
    try:
        for arch in seccomp.get("architectures") or []:
            lib.seccomp_arch_add(
                ctx, lib.seccomp_arch_resolve_name(ARCHITECTURES[arch][0].encode())
            )
        for index, rule in enumerate(rules):
            for name in dict.fromkeys(n for n in rule["names"] if n in repeated):
                try:
                    _add_rule(lib, ctx, rule, default, (name,))
                except LinuxError as err:
                    reason = os.strerror(err.errno).lower()
                    found.append(
                        f"linux.seccomp.syscalls[{index}]: libseccomp refuses its rule for "
                        f"{name!r} after an earlier rule for it with the same conditions and "
                        f"another action ({reason})"
                    )
    finally:
        lib.seccomp_release(ctx)
    return found


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    fd = os.memfd_create("pyrun-seccomp", os.MFD_CLOEXEC)
    try:
        result = lib.seccomp_export_bpf(ctx, fd)
        if result < 0:
            raise LinuxError("seccomp_export_bpf", -result)
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def _last_syscalls(lib: ctypes.CDLL, seccomp: Mapping[str, Any]) -> dict[int, dict[str, int]]:
    """AUDIT_ARCH -> {OCI arch: largest syscall number the profile names for it}, for the
    listed architectures (patchbpf's findLastSyscalls: every rule counts, whatever its
    action; pseudo numbers of syscalls an architecture lacks do not)."""
    names = {name for rule in seccomp.get("syscalls") or [] for name in rule["names"]}
    encoded = [name.encode() for name in names if name.isascii()]
    last: dict[int, dict[str, int]] = {}
    for arch in seccomp.get("architectures") or []:
        libname, audit = ARCHITECTURES[arch]
        token = lib.seccomp_arch_resolve_name(libname.encode())
        largest = max(
            (lib.seccomp_syscall_resolve_name_arch(token, raw) for raw in encoded), default=0
        )
        if largest > 0:
            last.setdefault(audit, {})[arch] = largest
    return last


# -- the ENOSYS stub (runc's patchbpf, same decisions) ---------------------------------------

_LD_W_ABS = 0x20
_JMP_JA = 0x05
_JMP_JEQ_K = 0x15
_JMP_JGT_K = 0x25
_JMP_JSET_K = 0x45
_RET_K = 0x06
_SECCOMP_RET_ERRNO = 0x00050000
_RET_ENOSYS = _SECCOMP_RET_ERRNO | ENOSYS
_OFFSET_NR = 0
_OFFSET_ARCH = 4
_INSN = struct.Struct("=HBBI")


def enosys_stub(last: Mapping[int, Mapping[str, int]]) -> bytes:
    """BPF that returns ENOSYS for a syscall above the largest one the profile knows on the
    caller's architecture, and otherwise falls through to the program appended after it.

    Layout: load arch; one ``jeq`` per architecture to its section; ``ja`` to the filter.
    A section: load nr; [x86_64/x32: route by bit 30]; ``jgt last`` to its ``ret ENOSYS``;
    ``ja`` to the filter. Jumps are resolved by label in a second pass.
    """
    if not last:
        return b""
    # Instructions as [code, jt, jf, k] where jt/jf/k may be a label (str) to resolve.
    code: list[list[int | str]] = [[_LD_W_ABS, 0, 0, _OFFSET_ARCH]]
    sections: list[tuple[str, list[list[int | str]]]] = []
    for number, (audit, by_arch) in enumerate(sorted(last.items())):
        section = f"arch{number}"
        code.append([_JMP_JEQ_K, section, 0, audit])
        sections.append((section, _section(section, audit, by_arch)))
    code.append([_JMP_JA, 0, 0, "filter"])
    labels: dict[str, int] = {}
    for section, body in sections:
        labels[section] = len(code)
        for instruction in body:
            if isinstance(instruction[0], str):  # a label marker
                labels[instruction[0]] = len(code)
            else:
                code.append(instruction)
    labels["filter"] = len(code)
    out = bytearray()
    for index, (op, jt, jf, k) in enumerate(code):
        jt_value = labels[jt] - index - 1 if isinstance(jt, str) else jt
        jf_value = labels[jf] - index - 1 if isinstance(jf, str) else jf
        k_value = labels[k] - index - 1 if isinstance(k, str) else k
        assert isinstance(op, int) and isinstance(jt_value, int) and isinstance(jf_value, int)
        assert isinstance(k_value, int)
        if not (0 <= jt_value <= 255 and 0 <= jf_value <= 255):
            raise PyrunError("linux.seccomp: too many architectures for the ENOSYS stub")
        out += _INSN.pack(op, jt_value, jf_value, k_value)
    return bytes(out)


def _section(name: str, audit: int, by_arch: Mapping[str, int]) -> list[list[int | str]]:
    enosys, to_filter = f"{name}.enosys", f"{name}.filter"
    body: list[list[int | str]] = [[_LD_W_ABS, 0, 0, _OFFSET_NR]]
    if set(by_arch) == {"SCMP_ARCH_X86_64", "SCMP_ARCH_X32"}:
        x32 = f"{name}.x32"
        body += [
            [_JMP_JSET_K, x32, 0, _X32_BIT],
            [_JMP_JGT_K, enosys, to_filter, by_arch["SCMP_ARCH_X86_64"]],
            [x32],
            [_JMP_JGT_K, enosys, to_filter, by_arch["SCMP_ARCH_X32"]],
        ]
    else:
        ((arch, largest),) = by_arch.items()
        if arch in ("SCMP_ARCH_S390", "SCMP_ARCH_S390X"):
            # Unknown syscalls reach the filter as setup(2), number 0, on s390: ENOSYS too.
            body.append([_JMP_JEQ_K, enosys, 0, 0])
        if arch == "SCMP_ARCH_X86_64":
            body.append([_JMP_JSET_K, to_filter, 0, _X32_BIT])  # an x32 call: not ours
        elif arch == "SCMP_ARCH_X32":
            body.append([_JMP_JSET_K, 0, to_filter, _X32_BIT])  # a plain x86_64 call
        body.append([_JMP_JGT_K, enosys, to_filter, largest])
    body += [[to_filter], [_JMP_JA, 0, 0, "filter"], [enosys], [_RET_K, 0, 0, _RET_ENOSYS]]
    return body


def decode(program: bytes) -> list[tuple[int, int, int, int]]:
    """The (code, jt, jf, k) instructions of a program (for tests and debugging)."""
    return [_INSN.unpack_from(program, offset) for offset in range(0, len(program), 8)]
