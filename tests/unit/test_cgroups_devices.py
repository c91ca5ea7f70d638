"""Device rules: parsing, runc's emulator and the generated eBPF program.

The program is run by a small interpreter of the instructions the generator emits (with the
verifier's basic constraints: known opcodes, forward in-range jumps, r0 set before exit) and
compared with an independent model of the v1 devices cgroup (the kernel's exception list).
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.cgroups import devices_bpf as bpf
from runtime.cgroups.devices import WILDCARD, DeviceRule, emulate, parse_rules
from runtime.errors import CgroupError

U64 = 2**64 - 1
TYPES = {"c": bpf.BPF_DEVCG_DEV_CHAR, "b": bpf.BPF_DEVCG_DEV_BLOCK}
ACCESS = {"r": bpf.BPF_DEVCG_ACC_READ, "w": bpf.BPF_DEVCG_ACC_WRITE, "m": bpf.BPF_DEVCG_ACC_MKNOD}


def run(program: bytes, kind: str, major: int, minor: int, access: str) -> bool:
    """Interpret a BPF_PROG_TYPE_CGROUP_DEVICE program for one access."""
    insns = bpf.decode(program)
    bits = sum(ACCESS[c] for c in access)
    ctx = struct.pack("<III", (bits << 16) | TYPES[kind], major, minor)
    regs: list[int | None] = [None] * 11
    regs[1] = -1  # the context pointer
    pc = 0
    for _step in range(len(insns) + 1):
        op, dst, src, off, imm = insns[pc]
        pc += 1
        if op in (bpf.JMP_JEQ_K, bpf.JMP_JNE_K, bpf.JMP_JNE_X):
            assert off >= 0 and pc + off <= len(insns), "jumps must go forward, in range"
            left = regs[dst]
            right = regs[src] if op == bpf.JMP_JNE_X else imm & U64
            assert left is not None and right is not None, "read of an unset register"
            if (left == right) == (op == bpf.JMP_JEQ_K):
                pc += off
        elif op == bpf.LDX_MEM_W:
            assert regs[src] == -1 and off in (0, 4, 8)
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif op == bpf.ALU32_AND_K:
            regs[dst] = (regs[dst] or 0) & imm & 0xFFFFFFFF
        elif op == bpf.ALU32_RSH_K:
            regs[dst] = ((regs[dst] or 0) & 0xFFFFFFFF) >> imm
        elif op == bpf.ALU32_MOV_K:
            regs[dst] = imm & 0xFFFFFFFF
        elif op == bpf.ALU32_MOV_X:
            value = regs[src]
            assert value is not None and value != -1
            regs[dst] = value & 0xFFFFFFFF
        elif op == bpf.JMP_EXIT:
            assert regs[0] in (0, 1), "r0 must be set to 0 or 1 before exit"
            return regs[0] == 1
        else:
            raise AssertionError(f"unknown opcode {op:#x}")
    raise AssertionError("program did not exit")


class KernelV1:
    """The v1 devices cgroup as the kernel keeps it: a default and a list of exceptions."""

    def __init__(self) -> None:
        self.allow_all = True  # a fresh cgroup under the root
        self.exceptions: list[list] = []  # [type, major, minor, access set]

    def write(self, rule: DeviceRule) -> None:
        if rule.type == "a":
            self.allow_all = rule.allow
            self.exceptions = []
            return
        adding = rule.allow != self.allow_all
        for ex in self.exceptions:
            if ex[:3] == [rule.type, rule.major, rule.minor]:
                if adding:
                    ex[3] |= set(rule.access)
                else:
                    ex[3] -= set(rule.access)
                break
        else:
            if adding:
                self.exceptions.append([rule.type, rule.major, rule.minor, set(rule.access)])
        self.exceptions = [ex for ex in self.exceptions if ex[3]]

    def allowed(self, kind: str, major: int, minor: int, access: str) -> bool:
        for etype, emajor, eminor, eaccess in self.exceptions:
            if etype != kind or emajor not in (WILDCARD, major) or eminor not in (WILDCARD, minor):
                continue
            if self.allow_all and set(access) & eaccess:
                return False  # match_exception_partial
            if not self.allow_all and set(access) <= eaccess:
                return True  # match_exception
        return self.allow_all


def kernel_for(rules: list[DeviceRule]) -> KernelV1:
    """What pyrun writes on v1: deny-all first unless the list starts with an 'a' rule."""
    kernel = KernelV1()
    if not rules or rules[0].type != "a":
        kernel.write(DeviceRule(False, "a", WILDCARD, WILDCARD, "rwm"))
    for rule in rules:
        kernel.write(rule)
    return kernel


RUNC_DEFAULTS = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
]


@pytest.mark.parametrize(
    ("kind", "major", "minor", "access", "expected"),
    [
        ("c", 1, 3, "rw", True),  # /dev/null
        ("c", 1, 3, "rwm", True),
        ("c", 1, 5, "r", True),  # /dev/zero
        ("c", 136, 4, "rw", True),  # /dev/pts/4
        ("c", 10, 200, "rw", True),  # /dev/net/tun
        ("c", 10, 201, "r", False),
        ("c", 4, 1, "m", True),  # mknod of any char device
        ("c", 4, 1, "r", False),
        ("c", 4, 1, "rm", False),  # one exception must grant every requested bit
        ("b", 8, 0, "m", True),
        ("b", 8, 0, "r", False),  # the disk itself
        ("b", 1, 3, "rw", False),  # block 1:3 is not char 1:3
        ("c", 2**31 - 1, 0, "r", False),
    ],
)
def test_runc_default_rules(kind: str, major: int, minor: int, access: str, expected: bool) -> None:
    program = bpf.program_for(parse_rules(RUNC_DEFAULTS))
    assert run(program, kind, major, minor, access) is expected
    assert kernel_for(parse_rules(RUNC_DEFAULTS)).allowed(kind, major, minor, access) is expected


@pytest.mark.parametrize(
    ("rules", "cases"),
    [
        (  # deny-list: allow all, then deny /dev/null for writing; rw overlaps the deny
            [{"allow": True}, {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}],
            [
                ("c", 1, 3, "r", True),
                ("c", 1, 3, "w", False),
                ("c", 1, 3, "rw", False),
                ("c", 1, 5, "rw", True),
                ("b", 1, 3, "w", True),
            ],
        ),
        (  # no leading "a" rule: runc starts from deny-all
            [{"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}],
            [("c", 1, 5, "r", True), ("c", 1, 5, "w", False), ("c", 1, 3, "r", False)],
        ),
        (  # a later "a" rule resets everything before it
            [
                {"allow": False},
                {"allow": True, "type": "c", "major": 1, "minor": 3},
                {"allow": True},
            ],
            [("c", 9, 9, "rwm", True), ("b", 8, 0, "rw", True)],
        ),
        (  # removing part of an exception in allow-list mode
            [
                {"allow": False},
                {"allow": True, "type": "c", "major": 1, "minor": 3},
                {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"},
            ],
            [("c", 1, 3, "rm", True), ("c", 1, 3, "w", False), ("c", 1, 3, "rw", False)],
        ),
    ],
)
def test_rule_semantics(rules: list[dict[str, object]], cases: list[tuple]) -> None:
    parsed = parse_rules(rules)
    program = bpf.program_for(parsed)
    for kind, major, minor, access, expected in cases:
        assert run(program, kind, major, minor, access) is expected, (kind, major, minor, access)
        assert kernel_for(parsed).allowed(kind, major, minor, access) is expected


def test_program_layout_matches_runc() -> None:
    rules = parse_rules(
        [{"allow": False}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]
    )
    assert bpf.generate(emulate(rules)) == [
        (bpf.LDX_MEM_W, 2, 1, 0, 0),
        (bpf.ALU32_AND_K, 2, 0, 0, 0xFFFF),
        (bpf.LDX_MEM_W, 3, 1, 0, 0),
        (bpf.ALU32_RSH_K, 3, 0, 0, 16),
        (bpf.LDX_MEM_W, 4, 1, 4, 0),
        (bpf.LDX_MEM_W, 5, 1, 8, 0),
        (bpf.JMP_JNE_K, 2, 0, 7, bpf.BPF_DEVCG_DEV_CHAR),  # to the default block
        (bpf.ALU32_MOV_X, 1, 3, 0, 0),
        (bpf.ALU32_AND_K, 1, 0, 0, bpf.BPF_DEVCG_ACC_READ | bpf.BPF_DEVCG_ACC_WRITE),
        (bpf.JMP_JNE_X, 1, 3, 4, 0),
        (bpf.JMP_JNE_K, 4, 0, 3, 1),
        (bpf.JMP_JNE_K, 5, 0, 2, 3),
        (bpf.ALU32_MOV_K, 0, 0, 0, 1),
        (bpf.JMP_EXIT, 0, 0, 0, 0),
        (bpf.ALU32_MOV_K, 0, 0, 0, 0),
        (bpf.JMP_EXIT, 0, 0, 0, 0),
    ]
    assert bpf.decode(bpf.encode(bpf.generate(emulate(rules)))) == bpf.generate(emulate(rules))
    assert bpf.encode([(bpf.JMP_JNE_K, 2, 0, 7, 2)]) == bytes([0x55, 0x02, 7, 0, 2, 0, 0, 0])


def test_emulator_state() -> None:
    emulator = emulate(parse_rules(RUNC_DEFAULTS))
    assert emulator.default_allow is False
    assert [rule.cgroup_string() for rule in emulator.rules()] == [
        "b *:* m",
        "c *:* m",
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:2 rwm",
        "c 10:200 rwm",
        "c 136:* rwm",
    ]
    assert all(rule.allow for rule in emulator.rules())


@pytest.mark.parametrize(
    "rules",
    [
        [
            {"allow": False},
            {"allow": True, "type": "c", "access": "rw"},
            {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"},
        ],
        [
            {"allow": True},
            {"allow": False, "type": "b", "major": 8},
            {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"},
        ],
    ],
)
def test_punching_holes_in_wildcards_is_refused(rules: list[dict[str, object]]) -> None:
    with pytest.raises(CgroupError, match="cannot punch a hole in the wildcard rule"):
        emulate(parse_rules(rules))


def test_parse_defaults_and_normalisation() -> None:
    assert parse_rules(
        [{"allow": True}, {"allow": False, "type": "c", "major": 4, "access": "wr"}]
    ) == [
        DeviceRule(True, "a", WILDCARD, WILDCARD, "rwm"),
        DeviceRule(False, "c", 4, WILDCARD, "rw"),
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"allow": "yes"}, "allow: must be true or false"),
        ({"allow": True, "type": "p"}, "type: must be 'a', 'b' or 'c'"),
        ({"allow": True, "major": -5}, "major: must be an integer"),
        ({"allow": True, "minor": 2**31}, "minor: must be an integer"),
        ({"allow": True, "access": "rwq"}, "access: must be letters"),
    ],
)
def test_parse_errors(entry: dict[str, object], message: str) -> None:
    with pytest.raises(CgroupError, match=message):
        parse_rules([{"allow": False}, entry])


rule_strategy = st.fixed_dictionaries(
    {
        "allow": st.booleans(),
        "type": st.sampled_from(["a", "b", "c", "c", "c"]),
        "major": st.one_of(st.none(), st.sampled_from([1, 5, 8, 136])),
        "minor": st.one_of(st.none(), st.sampled_from([0, 3, 5])),
        "access": st.sampled_from(["r", "w", "m", "rw", "rm", "wm", "rwm"]),
    }
)
access_strategy = st.tuples(
    st.sampled_from(["b", "c"]),
    st.sampled_from([1, 5, 8, 136, 7]),
    st.sampled_from([0, 3, 5, 9]),
    st.sampled_from(["r", "w", "m", "rw", "rwm"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(rule_strategy, max_size=8), st.lists(access_strategy, min_size=1, max_size=12))
def test_program_agrees_with_the_v1_kernel(rules: list[dict[str, object]], accesses: list) -> None:
    parsed = parse_rules(rules)
    try:
        program = bpf.program_for(parsed)
    except CgroupError:
        return  # hole punching: refused on v1 and v2 alike
    kernel = kernel_for(parsed)
    for kind, major, minor, access in accesses:
        assert run(program, kind, major, minor, access) is kernel.allowed(
            kind, major, minor, access
        )
