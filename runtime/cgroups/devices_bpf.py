"""Device rules on cgroup v2: a ``BPF_PROG_TYPE_CGROUP_DEVICE`` program, loaded with bpf(2)
and attached to the container's cgroup directory.

The generator follows runc's ``devicefilter`` (itself crun's ``ebpf.c``): the rules are first run
through the v1 emulator (``devices.py``), so the program only checks the resulting exceptions,
all of which act against one default; the first exception that matches decides, otherwise the
default does (deny unless an ``a`` allow-all rule reset it). One deliberate difference: in
deny-list mode an exception matches when the requested access *overlaps* its access (the v1
kernel's ``match_exception_partial``), where runc requires a subset, which would let
``open(O_RDWR)`` through a ``w``-only deny rule.

The program sees ``struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor;}`` with
``access_type = (access << 16) | type`` and returns 1 to allow, 0 to deny (EPERM).

ctypes is imported only by ``attach()``; generating and encoding the program is pure.
"""

from __future__ import annotations

import os
import struct

from runtime.cgroups.devices import WILDCARD, DeviceRule, Emulator, emulate

# include/uapi/linux/bpf.h
BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE = 1, 2, 4
BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR = 1, 2
_ACCESS_BITS = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}
_ALL_ACCESS = BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE
_TYPES = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}

# Opcodes (class | op | source) used by the generator.
LDX_MEM_W = 0x61  # dst = *(u32 *)(src + off)
ALU32_AND_K = 0x54  # dst = (u32)(dst & imm)
ALU32_RSH_K = 0x74  # dst = (u32)(dst >> imm)
ALU32_MOV_K = 0xB4  # dst = (u32)imm
ALU32_MOV_X = 0xBC  # dst = (u32)src
JMP_JEQ_K = 0x15  # if dst == imm: pc += off
JMP_JNE_K = 0x55  # if dst != imm: pc += off
JMP_JNE_X = 0x5D  # if dst != src: pc += off
JMP_EXIT = 0x95  # return r0

LICENSE = b"Apache\0"  # runc's; cgroup device programs use no GPL-only helpers

# One instruction: (opcode, dst, src, off, imm).
Insn = tuple[int, int, int, int, int]


def _block(rule: DeviceRule, allow: bool, default_allow: bool) -> list[Insn]:
    """Instructions for one exception; ``off`` of the skip jumps is -1 until resolved."""
    insns: list[Insn] = [(JMP_JNE_K, 2, 0, -1, _TYPES[rule.type])]
    access = 0
    for letter in rule.access:
        access |= _ACCESS_BITS[letter]
    if access != _ALL_ACCESS:
        insns.append((ALU32_MOV_X, 1, 3, 0, 0))  # r1 = requested access
        insns.append((ALU32_AND_K, 1, 0, 0, access))
        if default_allow:
            insns.append((JMP_JEQ_K, 1, 0, -1, 0))  # no overlap: not this rule
        else:
            insns.append((JMP_JNE_X, 1, 3, -1, 0))  # not a subset: not this rule
    if rule.major != WILDCARD:
        insns.append((JMP_JNE_K, 4, 0, -1, rule.major))
    if rule.minor != WILDCARD:
        insns.append((JMP_JNE_K, 5, 0, -1, rule.minor))
    insns.append((ALU32_MOV_K, 0, 0, 0, int(allow)))
    insns.append((JMP_EXIT, 0, 0, 0, 0))
    # Every unresolved jump skips to the instruction after this block.
    end = len(insns)
    return [
        (op, dst, src, end - index - 1 if off == -1 else off, imm)
        for index, (op, dst, src, off, imm) in enumerate(insns)
    ]


def generate(emulator: Emulator) -> list[Insn]:
    insns: list[Insn] = [
        (LDX_MEM_W, 2, 1, 0, 0),  # r2 = access_type
        (ALU32_AND_K, 2, 0, 0, 0xFFFF),  # r2 = device type
        (LDX_MEM_W, 3, 1, 0, 0),
        (ALU32_RSH_K, 3, 0, 0, 16),  # r3 = requested access
        (LDX_MEM_W, 4, 1, 4, 0),  # r4 = major
        (LDX_MEM_W, 5, 1, 8, 0),  # r5 = minor
    ]
    for rule in emulator.rules():
        insns.extend(_block(rule, rule.allow, emulator.default_allow))
    insns.append((ALU32_MOV_K, 0, 0, 0, int(emulator.default_allow)))
    insns.append((JMP_EXIT, 0, 0, 0, 0))
    return insns


def encode(insns: list[Insn]) -> bytes:
    """``struct bpf_insn`` array: u8 code, u8 dst:4|src:4, s16 off, s32 imm (little endian)."""
    return b"".join(
        struct.pack("<BBhi", op, (src << 4) | dst, off, imm) for op, dst, src, off, imm in insns
    )


def decode(program: bytes) -> list[Insn]:
    out = []
    for index in range(0, len(program), 8):
        op, regs, off, imm = struct.unpack_from("<BBhi", program, index)
        out.append((op, regs & 0xF, regs >> 4, off, imm))
    return out


def program_for(rules: list[DeviceRule]) -> bytes:
    return encode(generate(emulate(rules)))


# -- loading (bpf(2) through ctypes) ------------------------------------------------------------

_BPF_PROG_LOAD, _BPF_PROG_ATTACH, _BPF_PROG_DETACH = 5, 8, 9
_BPF_PROG_GET_FD_BY_ID, _BPF_PROG_QUERY = 13, 16
_BPF_PROG_TYPE_CGROUP_DEVICE = 15
_BPF_CGROUP_DEVICE = 6
_BPF_F_ALLOW_MULTI = 2
_SYS_BPF = {
    "x86_64": 321,
    "aarch64": 280,
    "riscv64": 280,
    "loongarch64": 280,
    "ppc64le": 361,
    "ppc64": 361,
    "s390x": 351,
    "i686": 357,
    "armv7l": 386,
}
_ATTR_SIZE = 128  # larger than every field we use; the kernel wants the tail zeroed


def _bpf(cmd: int, attr: bytearray) -> int:
    import ctypes

    nr = _SYS_BPF.get(os.uname().machine)
    if nr is None:
        raise OSError(95, f"bpf(2) syscall number unknown for {os.uname().machine}")  # EOPNOTSUPP
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    result = int(
        libc.syscall(
            ctypes.c_long(nr), ctypes.c_int(cmd), ctypes.byref(buf), ctypes.c_uint(len(attr))
        )
    )
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def _load(program: bytes) -> int:
    import ctypes

    insns = ctypes.create_string_buffer(program, len(program))
    license_buf = ctypes.create_string_buffer(LICENSE, len(LICENSE))
    attr = bytearray(_ATTR_SIZE)
    struct.pack_into(
        "<IIQQ",
        attr,
        0,
        _BPF_PROG_TYPE_CGROUP_DEVICE,
        len(program) // 8,
        ctypes.addressof(insns),
        ctypes.addressof(license_buf),
    )
    attr[48:57] = b"pyrun_dev"  # prog_name, shown by bpftool
    try:
        return _bpf(_BPF_PROG_LOAD, attr)
    except OSError as first:
        # Load again with the verifier log so the error says what was rejected.
        log = ctypes.create_string_buffer(1 << 16)
        struct.pack_into("<IIQ", attr, 24, 1, len(log), ctypes.addressof(log))
        try:
            return _bpf(_BPF_PROG_LOAD, attr)
        except OSError as second:
            text = log.value.decode(errors="replace").strip().splitlines()[-3:]
            detail = f"{os.strerror(second.errno or 0)}; verifier: {' | '.join(text)}"
            raise OSError(second.errno, detail) from first


def _attached(cgroup_fd: int) -> list[int]:
    import ctypes

    ids = (ctypes.c_uint32 * 64)()
    attr = bytearray(_ATTR_SIZE)
    struct.pack_into(
        "<IIIIQI", attr, 0, cgroup_fd, _BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), 64
    )
    _bpf(_BPF_PROG_QUERY, attr)
    (count,) = struct.unpack_from("<I", attr, 24)
    return [int(ids[i]) for i in range(min(count, 64))]


def attach(path: str, program: bytes) -> None:
    """Attach ``program`` to cgroup2 directory ``path``, replacing programs attached before
    (``apply()`` on a running container): attach the new one first, then detach the old ones,
    so the cgroup is never without a filter. Raises OSError."""
    cgroup_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        old = _attached(cgroup_fd)
        prog_fd = _load(program)
        try:
            attr = bytearray(_ATTR_SIZE)
            struct.pack_into(
                "<IIII", attr, 0, cgroup_fd, prog_fd, _BPF_CGROUP_DEVICE, _BPF_F_ALLOW_MULTI
            )
            _bpf(_BPF_PROG_ATTACH, attr)
        finally:
            os.close(prog_fd)  # the cgroup holds its own reference
        for prog_id in old:
            attr = bytearray(_ATTR_SIZE)
            struct.pack_into("<I", attr, 0, prog_id)
            old_fd = _bpf(_BPF_PROG_GET_FD_BY_ID, attr)
            try:
                attr = bytearray(_ATTR_SIZE)
                struct.pack_into("<III", attr, 0, cgroup_fd, old_fd, _BPF_CGROUP_DEVICE)
                _bpf(_BPF_PROG_DETACH, attr)
            finally:
                os.close(old_fd)
    finally:
        os.close(cgroup_fd)


def attached_programs(path: str) -> list[int]:
    """Ids of the device programs attached directly to ``path`` (for tests and debugging)."""
    cgroup_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _attached(cgroup_fd)
    finally:
        os.close(cgroup_fd)
