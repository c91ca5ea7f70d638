"""``runtime.linux`` units outside ``Rootfs``: safe paths, mount options, capabilities,
namespaces, the container process, and ``parse_signal``.

No root and no sockets (rule 9). Anything that would change this process (capset, prctl,
setns, setresuid, sethostname) goes through ``FakeSyscalls``, the recording fake of the seam
defined in ``test_linux_seam`` (rule 3). ``resolve_in_root`` is additionally checked against
the kernel's own openat2(RESOLVE_IN_ROOT), which needs no privilege and changes nothing.
"""

from __future__ import annotations

import builtins
import io
import os
import resource
import shutil
import stat
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import runtime.linux.capabilities as capabilities_mod
import runtime.linux.namespaces as namespaces_mod
from runtime.errors import ContainerInitError, LinuxError
from runtime.linux import process as process_mod
from runtime.linux.capabilities import CapabilityPlan, last_cap, mask
from runtime.linux.mountopts import MountOptions
from runtime.linux.namespaces import NamespacePlan, join_all
from runtime.linux.process import (
    DEFAULT_PATH,
    apply_rlimits,
    build_env,
    find_executable,
    home_of,
    switch_user,
)
from runtime.linux.securepath import ensure_file, mkdir_all, open_in_root, resolve_in_root
from runtime.linux.syscalls import (
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAP_AMBIENT_RAISE,
    PR_CAPBSET_DROP,
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    Syscalls,
)
from runtime.linux.system import set_names
from runtime.spec.tables import (
    CAPABILITIES,
    MOUNT_EXTENSIONS,
    MOUNT_FLAGS,
    NAMESPACES,
    PROPAGATION_FLAGS,
    RECURSIVE_MOUNT_ATTRS,
    parse_signal,
)
from tests.unit.test_linux_seam import FakeSyscalls

EPERM, ENOENT, EEXIST, ENOTDIR, ENOSYS, ELOOP = 1, 2, 17, 20, 38, 40
LOOP_WORDS = "too many levels of symbolic links"

# -- resolve_in_root --------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> str:
    """An empty rootfs with a sibling ``host`` directory holding a secret."""
    real = tmp_path.resolve()
    (real / "rootfs").mkdir()
    (real / "host").mkdir()
    (real / "host" / "secret").write_text("host secret")
    return str(real / "rootfs")


def link(root: str, name: str, target: str) -> None:
    path = os.path.join(root, name.lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(target, path)


def kernel_resolve(root: str, unsafe: str) -> str:
    """What openat2(RESOLVE_IN_ROOT) makes of ``unsafe`` (raises LinuxError if it fails)."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = Syscalls().openat2(root_fd, unsafe.lstrip("/") or ".", os.O_PATH, RESOLVE_IN_ROOT)
        except LinuxError as err:
            if err.errno == ENOSYS:
                pytest.skip("the kernel has no openat2 (Linux < 5.6): no oracle")
            raise
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
    finally:
        os.close(root_fd)


def test_absolute_symlink_to_etc_stays_in_the_root(root: str) -> None:
    os.makedirs(f"{root}/etc")
    link(root, "/hostetc", "/etc")
    assert resolve_in_root(root, "/hostetc/passwd") == f"{root}/etc/passwd"
    assert resolve_in_root(root, "/hostetc") == f"{root}/etc"
    assert kernel_resolve(root, "/hostetc") == f"{root}/etc"
    link(root, "/usr/lib/deep", "/etc")  # absolute from deeper down: still the root's /etc
    assert resolve_in_root(root, "/usr/lib/deep/passwd") == f"{root}/etc/passwd"
    assert kernel_resolve(root, "/usr/lib/deep") == f"{root}/etc"


def test_absolute_symlink_to_a_host_path_is_rebased_on_the_root(root: str) -> None:
    host = os.path.join(os.path.dirname(root), "host")
    link(root, "/escape", host)
    link(root, "/secret", f"{host}/secret")
    assert resolve_in_root(root, "/escape/secret") == f"{root}{host}/secret"
    assert resolve_in_root(root, "/secret") == f"{root}{host}/secret"
    assert not os.path.exists(f"{root}{host}")  # nothing was created on the way


def test_self_referencing_absolute_link_is_a_loop(root: str) -> None:
    link(root, "/etc", "/etc")  # in the container /etc -> /etc points at itself
    with pytest.raises(LinuxError) as caught:
        resolve_in_root(root, "/etc/passwd")
    assert caught.value.errno == ELOOP


@pytest.mark.parametrize(
    ("unsafe", "expected"),
    [
        ("/up/etc/shadow", "/etc/shadow"),
        ("/a/b/deep/x", "/x"),
        ("/a/b/up2", "/a"),
        ("../../../etc/shadow", "/etc/shadow"),
        ("/a/../../../../a/b", "/a/b"),
        ("/a/b/../../../..", ""),
    ],
)
def test_dotdot_chains_stop_at_the_root(root: str, unsafe: str, expected: str) -> None:
    os.makedirs(f"{root}/a/b")
    link(root, "/up", "../../../..")
    link(root, "/a/b/deep", "../../../../../../../..")
    link(root, "/a/b/up2", "../b/..")
    assert resolve_in_root(root, unsafe) == root + expected


@pytest.mark.parametrize(
    ("unsafe", "expected"),
    [
        ("/.", ""),
        ("/./..", ""),
        ("/./../.", ""),
        ("/.././../a", "/a"),
        ("./a/./b/.", "/a/b"),
        ("a//b///", "/a/b"),
        ("/a/./b/./..", "/a"),
        ("", ""),
        ("/", ""),
        ("//", ""),
    ],
)
def test_dot_tricks(root: str, unsafe: str, expected: str) -> None:
    os.makedirs(f"{root}/a/b")
    assert resolve_in_root(root, unsafe) == root + expected


@pytest.mark.parametrize("unsafe", ["/..", "/../..", "/../../../../../..", ".."])
def test_dotdot_at_the_root_stays_at_the_root(root: str, unsafe: str) -> None:
    assert resolve_in_root(root, unsafe) == root
    assert resolve_in_root(root, unsafe + "/x") == f"{root}/x"
    assert kernel_resolve(root, unsafe) == root


def test_root_with_a_trailing_slash(root: str) -> None:
    os.makedirs(f"{root}/a")
    assert resolve_in_root(root + "/", "/a") == f"{root}/a"
    assert resolve_in_root(root + "//", "/") == root


def test_dotdot_after_a_symlink_is_taken_from_its_target(root: str) -> None:
    os.makedirs(f"{root}/x/y/z")
    link(root, "/l", "x/y/z")
    # Not lexical: /l/.. is /x/y (the parent of the link's target), as the kernel sees it.
    assert resolve_in_root(root, "/l/..") == f"{root}/x/y"
    assert kernel_resolve(root, "/l/..") == f"{root}/x/y"
    assert resolve_in_root(root, "/l/../../..") == root


@pytest.mark.parametrize(
    ("links", "unsafe"),
    [
        ({"/a": "b", "/b": "a"}, "/a"),
        ({"/self": "self"}, "/self/x"),
        ({"/self": "/self"}, "/self"),
        ({"/d/l": "../d/l"}, "/d/l/more"),
        ({"/p": "/q/x", "/q": "/p"}, "/p"),
    ],
)
def test_symlink_loops_are_eloop(root: str, links: dict[str, str], unsafe: str) -> None:
    for name, target in links.items():
        link(root, name, target)
    with pytest.raises(LinuxError) as caught:
        resolve_in_root(root, unsafe)
    assert (caught.value.operation, caught.value.errno) == ("resolve", ELOOP)
    assert str(caught.value) == f"resolve {unsafe}: {LOOP_WORDS}"
    with pytest.raises(LinuxError) as kernel:
        kernel_resolve(root, unsafe)
    assert kernel.value.errno == ELOOP


def make_chain(root: str, prefix: str, hops: int, end: str) -> None:
    """``prefix1 -> prefix2 -> ... -> prefix<hops> -> end``: ``hops`` links to follow."""
    for number in range(1, hops):
        os.symlink(f"{prefix}{number + 1}", os.path.join(root, f"{prefix}{number}"))
    os.symlink(end, os.path.join(root, f"{prefix}{hops}"))


def test_a_chain_of_40_symlinks_resolves(root: str) -> None:
    os.mkdir(f"{root}/target")
    make_chain(root, "l", 40, "target")
    assert resolve_in_root(root, "/l1") == f"{root}/target"
    assert resolve_in_root(root, "/l1/sub") == f"{root}/target/sub"
    assert kernel_resolve(root, "/l1") == f"{root}/target"


def test_a_chain_of_41_symlinks_is_eloop(root: str) -> None:
    os.mkdir(f"{root}/target")
    make_chain(root, "l", 41, "target")
    with pytest.raises(LinuxError) as caught:
        resolve_in_root(root, "/l1")
    assert (caught.value.errno, str(caught.value)) == (ELOOP, f"resolve /l1: {LOOP_WORDS}")
    with pytest.raises(LinuxError) as kernel:
        kernel_resolve(root, "/l1")
    assert kernel.value.errno == ELOOP
    # One hop fewer is fine again.
    assert resolve_in_root(root, "/l2") == f"{root}/target"


def test_the_40_hop_limit_counts_the_whole_path(root: str) -> None:
    os.mkdir(f"{root}/d")
    make_chain(root, "x", 20, "d")
    make_chain(f"{root}/d", "y", 20, "/d")
    make_chain(f"{root}/d", "z", 21, "/d")
    assert resolve_in_root(root, "/x1/y1") == f"{root}/d"  # 20 + 20 hops
    assert kernel_resolve(root, "/x1/y1") == f"{root}/d"
    with pytest.raises(LinuxError) as caught:
        resolve_in_root(root, "/x1/z1")  # 20 + 21 hops
    assert caught.value.errno == ELOOP
    with pytest.raises(LinuxError) as kernel:
        kernel_resolve(root, "/x1/z1")
    assert kernel.value.errno == ELOOP


def test_dangling_symlinks_keep_the_unresolved_rest_inside_the_root(root: str) -> None:
    os.mkdir(f"{root}/dir")
    link(root, "/abs", "/missing/deeper")
    link(root, "/rel", "../../nowhere/x")
    link(root, "/dir/rel", "../gone")
    assert resolve_in_root(root, "/abs") == f"{root}/missing/deeper"
    assert resolve_in_root(root, "/abs/file") == f"{root}/missing/deeper/file"
    assert resolve_in_root(root, "/rel/y") == f"{root}/nowhere/x/y"
    assert resolve_in_root(root, "/dir/rel/a/../b") == f"{root}/gone/b"
    assert not os.path.lexists(f"{root}/missing")


def test_symlink_to_a_file_in_the_middle_of_a_path(root: str) -> None:
    os.makedirs(f"{root}/data")
    Path(f"{root}/data/file.txt").write_text("x")
    link(root, "/f", "/data/file.txt")
    link(root, "/etc/f2", "../data/file.txt")
    assert resolve_in_root(root, "/f") == f"{root}/data/file.txt"
    assert resolve_in_root(root, "/f/below") == f"{root}/data/file.txt/below"
    assert resolve_in_root(root, "/etc/f2/a/b") == f"{root}/data/file.txt/a/b"
    assert resolve_in_root(root, "/f/..") == f"{root}/data"
    assert kernel_resolve(root, "/f") == f"{root}/data/file.txt"


# Random trees: names from a tiny alphabet so that paths and link targets collide often.
NAMES = ("a", "b", "c")
PARTS = st.sampled_from((*NAMES, "..", ".", ""))
TARGETS = st.one_of(
    st.lists(PARTS, max_size=4).map(lambda p: "/" + "/".join(p)),  # absolute
    st.lists(PARTS, min_size=1, max_size=4).map("/".join).filter(bool),  # relative
    st.tuples(st.integers(1, 6), st.lists(st.sampled_from(NAMES), max_size=2)).map(
        lambda t: "/".join([".."] * t[0] + t[1])  # ..-heavy
    ),
    st.sampled_from(("HOST", "HOST/secret", "/etc", "/", ".")),  # host paths, itself
)
ENTRIES = st.lists(
    st.tuples(
        st.lists(st.sampled_from(NAMES), min_size=1, max_size=3),
        st.sampled_from(("dir", "dir", "file", "link", "link", "link")),
        TARGETS,
    ),
    min_size=1,
    max_size=16,
)
ANY_PARTS = st.lists(st.sampled_from((*NAMES, "..", ".", "")), max_size=7)


@st.composite
def trees_and_paths(draw: Any) -> tuple[list[tuple[list[str], str, str]], str]:
    """A tree, and a path that is random or goes through one of the tree's entries."""
    entries = draw(ENTRIES)
    through = st.sampled_from([parts for parts, _, _ in entries]).flatmap(
        lambda parts: st.lists(st.sampled_from((*NAMES, "..", ".")), max_size=3).map(
            lambda rest: parts + rest
        )
    )
    parts = draw(st.one_of(ANY_PARTS, through))
    return entries, ("/" if draw(st.booleans()) else "") + "/".join(parts)


def build_tree(root: str, host: str, entries: list[tuple[list[str], str, str]]) -> None:
    """Create the entries; never write through a symlink (it could point out of the tree)."""
    for parts, kind, target in entries:
        parent = root
        for part in parts[:-1]:
            parent = os.path.join(parent, part)
            if os.path.islink(parent) or os.path.isfile(parent):
                break
            if not os.path.exists(parent):
                os.mkdir(parent)
        else:
            path = os.path.join(parent, parts[-1])
            if os.path.lexists(path):
                continue
            if kind == "dir":
                os.mkdir(path)
            elif kind == "file":
                Path(path).write_text(kind)
            else:
                os.symlink(target.replace("HOST", host), path)


def iter_tree(root: str) -> list[str]:
    return [os.path.join(d, n) for d, dirs, files in os.walk(root) for n in dirs + files]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=trees_and_paths())
def test_property_result_is_inside_the_root_and_free_of_symlinks(
    case: tuple[list[tuple[list[str], str, str]], str],
) -> None:
    entries, path = case
    base = os.path.realpath(tempfile.mkdtemp(prefix="pyrun-securepath-"))
    try:
        root, host = f"{base}/rootfs", f"{base}/host"
        os.mkdir(root)
        os.mkdir(host)
        Path(f"{host}/secret").write_text("host")
        build_tree(root, host, entries)
        event(f"{sum(os.path.islink(p) for p in iter_tree(root))} links in the tree")
        try:
            result = resolve_in_root(root, path)
        except LinuxError as err:
            event("ELOOP")
            assert (err.errno, str(err)) == (ELOOP, f"resolve {path}: {LOOP_WORDS}")
            with pytest.raises(LinuxError):  # the kernel cannot resolve it either
                kernel_resolve(root, path)
            return
        assert result == root or result.startswith(root + "/")
        below = result[len(root) + 1 :].split("/") if result != root else []
        assert all(part not in ("", ".", "..") for part in below)
        current = root
        for part in below:
            current = f"{current}/{part}"
            assert not os.path.islink(current), (path, result, current)
        try:
            by_kernel = kernel_resolve(root, path)
        except LinuxError:
            event("the kernel refuses (dangling, or through a file)")
        else:
            event("the kernel resolves it")
            assert result == by_kernel
    finally:
        shutil.rmtree(base)


# -- mkdir_all, ensure_file, open_in_root -----------------------------------------------------


def test_mkdir_all_creates_parents_and_is_idempotent(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    old = os.umask(0o022)
    try:
        mkdir_all(str(target), 0o750)
        mkdir_all(str(target), 0o750)
    finally:
        os.umask(old)
    assert target.is_dir()
    assert stat.S_IMODE(target.stat().st_mode) == 0o750
    assert sorted(os.listdir(tmp_path)) == ["a"]
    assert os.listdir(target) == []


def test_mkdir_all_with_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("keep")
    with pytest.raises(LinuxError) as caught:
        mkdir_all(str(tmp_path / "file"))
    assert (caught.value.operation, caught.value.errno) == ("mkdir", EEXIST)
    assert str(caught.value) == (
        f"mkdir {tmp_path}/file (exists and is not a directory): file exists"
    )
    with pytest.raises(LinuxError) as below:
        mkdir_all(str(tmp_path / "file" / "sub"))
    assert (below.value.errno, str(below.value)) == (
        ENOTDIR,
        f"mkdir {tmp_path}/file/sub: not a directory",
    )
    assert (tmp_path / "file").read_text() == "keep"


def test_ensure_file_creates_parents_and_an_empty_file(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "deep" / "hosts"
    ensure_file(str(target))
    assert target.is_file() and not target.is_symlink()
    assert target.read_bytes() == b""
    assert (tmp_path / "etc" / "deep").is_dir()


def test_ensure_file_keeps_existing_files_and_directories(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("content")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "inside").write_text("x")
    ensure_file(str(tmp_path / "file"))
    ensure_file(str(tmp_path / "dir"))
    assert (tmp_path / "file").read_text() == "content"
    assert (tmp_path / "dir").is_dir()
    assert os.listdir(tmp_path / "dir") == ["inside"]


@pytest.mark.parametrize("target", ["elsewhere", "{tmp}/absolute", "real", "."])
def test_ensure_file_does_not_follow_a_final_symlink(tmp_path: Path, target: str) -> None:
    target = target.format(tmp=tmp_path)  # never a host path: a regression would write there
    (tmp_path / "real").write_text("untouched")
    os.symlink(target, tmp_path / "link")
    with pytest.raises(LinuxError) as caught:
        ensure_file(str(tmp_path / "link"))
    assert (caught.value.operation, caught.value.errno) == ("create", ELOOP)
    assert str(caught.value) == f"create {tmp_path}/link: {LOOP_WORDS}"
    assert os.readlink(tmp_path / "link") == target
    assert sorted(os.listdir(tmp_path)) == ["link", "real"]
    assert (tmp_path / "real").read_text() == "untouched"


@pytest.mark.parametrize(
    ("path", "relative", "shown"),
    [
        ("/etc/hosts", "etc/hosts", "/etc/hosts"),
        ("etc/hosts", "etc/hosts", "/etc/hosts"),
        ("///etc", "etc", "/etc"),
        ("/", ".", "/"),
        ("", ".", "/"),
    ],
)
def test_open_in_root_goes_through_openat2_in_root(
    tmp_path: Path, path: str, relative: str, shown: str
) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hosts").write_text("")
    fake = FakeSyscalls()
    root_fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = open_in_root(fake, root_fd, path, os.O_PATH)
        try:
            assert os.fstat(fd).st_ino == os.stat(tmp_path / shown.lstrip("/")).st_ino
        finally:
            os.close(fd)
    finally:
        os.close(root_fd)
    assert fake.calls == [
        ("openat2", (relative, os.O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS))
    ]
    assert RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS == 0x12
    assert fake.fd_paths[fd] == shown


# -- MountOptions -----------------------------------------------------------------------------

# runc's libcontainer/specconv table, written out with the kernel's numbers.
EXPECTED_MOUNT_FLAGS = {
    "acl": (False, 0x10000),
    "async": (True, 0x10),
    "atime": (True, 0x400),
    "bind": (False, 0x1000),
    "defaults": (False, 0),
    "dev": (True, 0x4),
    "diratime": (True, 0x800),
    "dirsync": (False, 0x80),
    "exec": (True, 0x8),
    "iversion": (False, 0x800000),
    "lazytime": (False, 0x2000000),
    "loud": (True, 0x8000),
    "mand": (False, 0x40),
    "noacl": (True, 0x10000),
    "noatime": (False, 0x400),
    "nodev": (False, 0x4),
    "nodiratime": (False, 0x800),
    "noexec": (False, 0x8),
    "noiversion": (True, 0x800000),
    "nolazytime": (True, 0x2000000),
    "nomand": (True, 0x40),
    "norelatime": (True, 0x200000),
    "nostrictatime": (True, 0x1000000),
    "nosuid": (False, 0x2),
    "nosymfollow": (False, 0x100),
    "rbind": (False, 0x1000 | 0x4000),
    "relatime": (False, 0x200000),
    "remount": (False, 0x20),
    "ro": (False, 0x1),
    "rw": (True, 0x1),
    "silent": (False, 0x8000),
    "strictatime": (False, 0x1000000),
    "suid": (True, 0x2),
    "sync": (False, 0x10),
    "symfollow": (True, 0x100),  # clears MS_NOSYMFOLLOW (runc specconv)
}
EXPECTED_PROPAGATION = {
    "private": 0x40000,
    "rprivate": 0x40000 | 0x4000,
    "shared": 0x100000,
    "rshared": 0x100000 | 0x4000,
    "slave": 0x80000,
    "rslave": 0x80000 | 0x4000,
    "unbindable": 0x20000,
    "runbindable": 0x20000 | 0x4000,
}
# option -> (attr_set, attr_clr); an atime mode also clears MOUNT_ATTR__ATIME (0x70).
EXPECTED_RECURSIVE = {
    "rro": (0x1, 0),
    "rrw": (0, 0x1),
    "rnosuid": (0x2, 0),
    "rsuid": (0, 0x2),
    "rnodev": (0x4, 0),
    "rdev": (0, 0x4),
    "rnoexec": (0x8, 0),
    "rexec": (0, 0x8),
    "rnodiratime": (0x80, 0),
    "rdiratime": (0, 0x80),
    "rrelatime": (0, 0x70),
    "rnoatime": (0x10, 0x70),
    "ratime": (0, 0x10),  # runc: clear MOUNT_ATTR_NOATIME
    "rnorelatime": (0, 0x0),  # runc: clear MOUNT_ATTR_RELATIME (0)
    "rnostrictatime": (0, 0x20),  # runc: clear MOUNT_ATTR_STRICTATIME
    "rstrictatime": (0x20, 0x70),
    "rnosymfollow": (0x200000, 0),
    "rsymfollow": (0, 0x200000),
}


def test_option_tables_hold_the_kernel_numbers() -> None:
    assert MOUNT_FLAGS == EXPECTED_MOUNT_FLAGS
    assert PROPAGATION_FLAGS == EXPECTED_PROPAGATION
    assert RECURSIVE_MOUNT_ATTRS == EXPECTED_RECURSIVE
    assert frozenset({"idmap", "ridmap", "tmpcopyup"}) == MOUNT_EXTENSIONS


@pytest.mark.parametrize("option", sorted(MOUNT_FLAGS))
def test_every_mount_flag_option(option: str) -> None:
    clear, flag = EXPECTED_MOUNT_FLAGS[option]
    alone = MountOptions([option])
    assert (alone.data, alone.propagation, alone.attr_set, alone.attr_clear) == (None, [], 0, 0)
    every_flag = 0
    for value in EXPECTED_MOUNT_FLAGS.values():
        every_flag |= value[1]
    setters = [name for name, (c, _) in EXPECTED_MOUNT_FLAGS.items() if not c]
    after_all = MountOptions([*setters, option]).flags
    if clear:
        assert alone.flags == 0  # clearing from nothing leaves nothing
        assert after_all == every_flag & ~flag
        opposite = next(n for n, v in EXPECTED_MOUNT_FLAGS.items() if v == (False, flag))
        assert MountOptions([opposite, option]).flags == 0
        assert MountOptions([option, opposite]).flags == flag
    else:
        assert alone.flags == flag
        assert after_all == every_flag
        assert MountOptions(["nodev", option]).flags == flag | 0x4


@pytest.mark.parametrize(
    ("options", "flags"),
    [
        (["ro", "rw"], 0),
        (["rw", "ro"], 0x1),
        (["nosuid", "suid", "nosuid"], 0x2),
        (["noexec", "nodev", "exec"], 0x4),
        (["rbind", "ro", "noatime", "atime", "relatime"], 0x1000 | 0x4000 | 0x1 | 0x200000),
        (["strictatime", "nostrictatime", "sync", "async"], 0),
        (["defaults"], 0),
    ],
)
def test_later_mount_options_override_earlier_ones(options: list[str], flags: int) -> None:
    parsed = MountOptions(options)
    assert parsed.flags == flags
    assert parsed.data is None


def test_ro_then_rw_is_not_read_only() -> None:
    assert MountOptions(["ro", "rw"]).flags & 0x1 == 0
    assert MountOptions(["ro", "rw", "ro"]).flags & 0x1 == 0x1


@pytest.mark.parametrize("option", sorted(PROPAGATION_FLAGS))
def test_every_propagation_option(option: str) -> None:
    parsed = MountOptions([option])
    assert parsed.propagation == [EXPECTED_PROPAGATION[option]]
    assert (parsed.flags, parsed.data, parsed.attr_set, parsed.attr_clear) == (0, None, 0, 0)


def test_propagation_is_collected_in_order() -> None:
    parsed = MountOptions(["rprivate", "nosuid", "shared", "rslave", "private"])
    assert parsed.propagation == [0x40000 | 0x4000, 0x100000, 0x80000 | 0x4000, 0x40000]
    assert parsed.flags == 0x2


@pytest.mark.parametrize("option", sorted(RECURSIVE_MOUNT_ATTRS))
def test_every_recursive_attribute(option: str) -> None:
    parsed = MountOptions([option])
    assert (parsed.attr_set, parsed.attr_clear) == EXPECTED_RECURSIVE[option]
    assert (parsed.flags, parsed.data, parsed.propagation) == (0, None, [])


def test_recursive_attributes_accumulate() -> None:
    parsed = MountOptions(["rro", "rnosuid", "rdev", "rnoatime", "ro"])
    assert (parsed.attr_set, parsed.attr_clear) == (0x1 | 0x2 | 0x10, 0x4 | 0x70)
    assert parsed.flags == 0x1


@pytest.mark.parametrize(
    ("option", "attr_set", "attr_clear", "flags"),
    [
        ("ratime", 0, 0x10, 0),  # runc: {clear, MOUNT_ATTR_NOATIME}
        ("rnorelatime", 0, 0, 0),  # runc: {clear, MOUNT_ATTR_RELATIME (= 0)}
        ("rnostrictatime", 0, 0x20, 0),  # runc: {clear, MOUNT_ATTR_STRICTATIME}
        ("symfollow", 0, 0, 0),  # runc: {clear, MS_NOSYMFOLLOW}
    ],
)
def test_options_runc_knows_are_not_mount_data(
    option: str, attr_set: int, attr_clear: int, flags: int
) -> None:
    parsed = MountOptions(["nosymfollow", option] if option == "symfollow" else [option])
    assert parsed.data is None
    assert (parsed.attr_set, parsed.attr_clear, parsed.flags) == (attr_set, attr_clear, flags)


@pytest.mark.parametrize("option", sorted(MOUNT_EXTENSIONS))
def test_mount_extensions_are_ignored(option: str) -> None:
    parsed = MountOptions([option, "ro"])
    assert (parsed.flags, parsed.data, parsed.propagation) == (0x1, None, [])
    assert (parsed.attr_set, parsed.attr_clear) == (0, 0)


def test_unknown_options_become_the_data_string_in_order() -> None:
    parsed = MountOptions(["size=65536k", "nosuid", "mode=755", "tmpcopyup", "uid=0", "rshared"])
    assert parsed.data == "size=65536k,mode=755,uid=0"
    assert parsed.flags == 0x2
    assert parsed.propagation == [0x100000 | 0x4000]
    assert MountOptions(["newinstance", "gid=5"]).data == "newinstance,gid=5"


@pytest.mark.parametrize("options", [None, []])
def test_no_options(options: list[str] | None) -> None:
    parsed = MountOptions(options)
    assert (parsed.flags, parsed.data, parsed.propagation) == (0, None, [])
    assert (parsed.attr_set, parsed.attr_clear, parsed.is_bind) == (0, 0, False)


def test_bind_type_implies_ms_bind() -> None:
    parsed = MountOptions(["ro"], "bind")
    assert (parsed.flags, parsed.is_bind) == (0x1000 | 0x1, True)
    assert MountOptions(None, "bind").flags == 0x1000
    assert MountOptions(["ro"], "tmpfs").is_bind is False
    assert MountOptions(["rbind"], "none").flags == 0x1000 | 0x4000
    assert MountOptions(["bind"]).is_bind is True
    assert MountOptions(["rbind"]).is_bind is True
    assert MountOptions(["remount", "ro"]).is_bind is False


# -- capabilities -----------------------------------------------------------------------------


def test_mask_sets_the_bit_of_each_name() -> None:
    assert mask(["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"], 40) == (1 << 0) | (1 << 5) | (1 << 21)
    assert mask(["CAP_CHECKPOINT_RESTORE"], 40) == 1 << 40
    assert mask(list(CAPABILITIES), 40) == (1 << 41) - 1
    assert mask(None, 40) == 0
    assert mask([], 40) == 0


def test_names_above_the_limit_are_skipped() -> None:
    names = ["CAP_CHOWN", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"]
    assert mask(names, 37) == (1 << 0) | (1 << 37)
    assert mask(names, 0) == 1
    assert mask(list(CAPABILITIES), 37) == (1 << 38) - 1


def test_capability_plan_masks_per_set() -> None:
    plan = CapabilityPlan(
        {
            "bounding": ["CAP_CHOWN", "CAP_NET_RAW", "CAP_BPF"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL", "CAP_SETUID"],
            "inheritable": ["CAP_SETGID", "CAP_PERFMON"],
            "ambient": ["CAP_SETUID"],
        },
        limit=38,
    )
    assert plan.limit == 38
    assert plan.bounding == (1 << 0) | (1 << 13)  # CAP_BPF (39) is above the limit
    assert plan.effective == 1 << 5
    assert plan.permitted == (1 << 5) | (1 << 7)
    assert plan.inheritable == (1 << 6) | (1 << 38)
    assert plan.ambient == 1 << 7
    empty = CapabilityPlan(None, limit=40)
    assert (empty.bounding, empty.effective, empty.permitted, empty.ambient) == (0, 0, 0, 0)


def test_drop_bounding_drops_exactly_the_others_up_to_the_limit() -> None:
    fake = FakeSyscalls()
    CapabilityPlan({"bounding": ["CAP_CHOWN", "CAP_SYS_ADMIN"]}, limit=40).drop_bounding(fake)
    dropped = [args[1] for name, args in fake.calls if name == "prctl"]
    assert dropped == [n for n in range(41) if n not in (0, 21)]
    assert {args[0] for _, args in fake.calls} == {PR_CAPBSET_DROP}
    assert fake.calls[0] == ("prctl", (24, 1, 0, 0, 0))
    assert len(fake.calls) == 39

    small = FakeSyscalls()
    CapabilityPlan({"bounding": ["CAP_DAC_OVERRIDE"]}, limit=3).drop_bounding(small)
    assert small.calls == [("prctl", (PR_CAPBSET_DROP, n, 0, 0, 0)) for n in (0, 2, 3)]

    everything = FakeSyscalls()
    CapabilityPlan({"bounding": list(CAPABILITIES)}, limit=40).drop_bounding(everything)
    assert everything.calls == []


def test_apply_sets_then_clears_then_raises_ambient_in_order() -> None:
    fake = FakeSyscalls()
    plan = CapabilityPlan(
        {
            "effective": ["CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_CHOWN", "CAP_SYS_TIME"],
            "inheritable": ["CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_CHOWN", "CAP_SETUID"],
            # CAP_SETUID not permitted, CAP_SYS_TIME not inheritable, CAP_MKNOD neither.
            "ambient": [
                "CAP_NET_BIND_SERVICE",
                "CAP_SETUID",
                "CAP_KILL",
                "CAP_SYS_TIME",
                "CAP_MKNOD",
                "CAP_CHOWN",
            ],
        },
        limit=40,
    )
    plan.apply(fake)
    assert fake.calls == [
        ("capset", (1 << 10, (1 << 10) | (1 << 5) | 1 | (1 << 25), (1 << 10) | (1 << 5) | 1 | 128)),
        ("prctl", (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)),
        ("prctl", (PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 0, 0, 0)),
        ("prctl", (PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 5, 0, 0)),
        ("prctl", (PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 10, 0, 0)),
    ]
    assert (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAP_AMBIENT_RAISE) == (47, 4, 2)


def test_apply_with_no_capabilities() -> None:
    fake = FakeSyscalls()
    CapabilityPlan({}, limit=40).apply(fake)
    assert fake.calls == [("capset", (0, 0, 0)), ("prctl", (47, 4, 0, 0, 0))]


def test_last_cap_reads_the_kernel_file() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as handle:
        expected = int(handle.read())
    assert last_cap() == expected
    assert CapabilityPlan(None).limit == expected


def test_last_cap_parses_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []

    def fake_open(path: str, mode: str = "r") -> io.BytesIO:
        opened.append(path)
        return io.BytesIO(b"37\n")

    monkeypatch.setattr(capabilities_mod, "open", fake_open, raising=False)
    assert last_cap() == 37
    assert opened == ["/proc/sys/kernel/cap_last_cap"]
    assert CapabilityPlan({"permitted": ["CAP_BPF", "CAP_CHOWN"]}).permitted == 1

    def missing(path: str, mode: str = "r") -> io.BytesIO:
        raise FileNotFoundError(ENOENT, "No such file or directory", path)

    monkeypatch.setattr(capabilities_mod, "open", missing, raising=False)
    assert last_cap() == 40 == max(CAPABILITIES.values())


# -- namespaces -------------------------------------------------------------------------------


def test_namespace_plan_new_flags_and_joins() -> None:
    plan = NamespacePlan(
        [
            {"type": "mount", "path": "/proc/1/ns/mnt"},
            {"type": "pid"},
            {"type": "network", "path": "/run/netns/n1"},
            {"type": "uts"},
            {"type": "ipc", "path": ""},
            {"type": "user", "path": "/proc/1/ns/user"},
            {"type": "cgroup", "path": "/proc/1/ns/cgroup"},
        ]
    )
    assert plan.new_flags == 0x20000000 | 0x04000000 | 0x08000000
    assert plan.new_flags == (NAMESPACES["pid"][0] | NAMESPACES["uts"][0] | NAMESPACES["ipc"][0])
    assert plan.joins == [
        ("user", "/proc/1/ns/user"),
        ("network", "/run/netns/n1"),
        ("cgroup", "/proc/1/ns/cgroup"),
        ("mount", "/proc/1/ns/mnt"),
    ]
    assert [plan.has(kind) for kind in ("mount", "pid", "network", "time")] == [
        True,
        True,
        True,
        False,
    ]
    assert [plan.has_new(kind) for kind in ("mount", "pid", "network", "ipc", "user")] == [
        False,
        True,
        False,
        True,
        False,
    ]


def test_namespace_plan_join_order_is_user_first_mount_last() -> None:
    kinds = ["mount", "time", "cgroup", "pid", "network", "uts", "ipc", "user"]
    plan = NamespacePlan([{"type": kind, "path": f"/ns/{kind}"} for kind in kinds])
    assert [kind for kind, _ in plan.joins] == [
        "user",
        "ipc",
        "uts",
        "network",
        "pid",
        "cgroup",
        "time",
        "mount",
    ]
    assert plan.new_flags == 0
    every = NamespacePlan([{"type": kind} for kind in NAMESPACES])
    assert every.new_flags == 0x7E020080
    assert every.joins == []


class OrderedFake(FakeSyscalls):
    """Logs setns into a shared event list; fails setns into ``fail_path``."""

    def __init__(self, events: list[tuple[str, str]], fail_path: str = "") -> None:
        super().__init__()
        self.events = events
        self.fail_path = fail_path

    def setns(self, fd: int, nstype: int, path: str = "") -> None:
        super().setns(fd, nstype, path)
        self.events.append(("setns", path))
        if path == self.fail_path:
            raise LinuxError("setns", EPERM, path)


@pytest.fixture
def ns_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Regular files standing in for /proc/<pid>/ns/*, and a log of os.open/os.close."""
    events: list[tuple[str, str]] = []
    fds: list[int] = []
    names: dict[int, str] = {}

    def logged_open(path: str, flags: int) -> int:
        fd = os.open(path, flags)
        events.append(("open", path))
        fds.append(fd)
        names[fd] = path
        return fd

    def logged_close(fd: int) -> None:
        events.append(("close", names.get(fd, str(fd))))
        os.close(fd)

    proxy = SimpleNamespace(
        open=logged_open, close=logged_close, O_RDONLY=os.O_RDONLY, O_CLOEXEC=os.O_CLOEXEC
    )
    monkeypatch.setattr(namespaces_mod, "os", proxy)
    for name in ("user", "net", "mnt"):
        (tmp_path / name).write_text("")
    return SimpleNamespace(dir=tmp_path, events=events, fds=fds)


def assert_closed(fds: list[int]) -> None:
    for fd in fds:
        with pytest.raises(OSError) as caught:
            os.fstat(fd)
        assert caught.value.errno == 9  # EBADF


def test_join_all_opens_everything_before_the_first_setns(ns_files: SimpleNamespace) -> None:
    d = ns_files.dir
    joins = [("user", f"{d}/user"), ("network", f"{d}/net"), ("mount", f"{d}/mnt")]
    fake = OrderedFake(ns_files.events)
    join_all(fake, joins)
    assert ns_files.events == [
        ("open", f"{d}/user"),
        ("open", f"{d}/net"),
        ("open", f"{d}/mnt"),
        ("setns", f"{d}/user"),
        ("setns", f"{d}/net"),
        ("setns", f"{d}/mnt"),
        ("close", f"{d}/user"),
        ("close", f"{d}/net"),
        ("close", f"{d}/mnt"),
    ]
    assert fake.calls == [
        ("setns", (0x10000000, f"{d}/user")),
        ("setns", (0x40000000, f"{d}/net")),
        ("setns", (0x00020000, f"{d}/mnt")),
    ]
    assert_closed(ns_files.fds)


def test_join_all_closes_the_fds_when_a_setns_fails(ns_files: SimpleNamespace) -> None:
    d = ns_files.dir
    joins = [("user", f"{d}/user"), ("network", f"{d}/net"), ("mount", f"{d}/mnt")]
    fake = OrderedFake(ns_files.events, fail_path=f"{d}/net")
    with pytest.raises(LinuxError) as caught:
        join_all(fake, joins)
    assert str(caught.value) == f"setns {d}/net: operation not permitted"
    assert [path for kind, path in ns_files.events if kind == "setns"] == [f"{d}/user", f"{d}/net"]
    assert ns_files.events[-3:] == [
        ("close", f"{d}/user"),
        ("close", f"{d}/net"),
        ("close", f"{d}/mnt"),
    ]
    assert len(ns_files.fds) == 3
    assert_closed(ns_files.fds)


def test_join_all_open_failure_names_the_namespace(ns_files: SimpleNamespace) -> None:
    d = ns_files.dir
    joins = [("user", f"{d}/user"), ("network", f"{d}/missing"), ("mount", f"{d}/mnt")]
    fake = OrderedFake(ns_files.events)
    with pytest.raises(LinuxError) as caught:
        join_all(fake, joins)
    assert (caught.value.operation, caught.value.errno) == ("open network namespace", ENOENT)
    assert str(caught.value) == f"open network namespace {d}/missing: no such file or directory"
    assert fake.calls == []
    assert ns_files.events == [("open", f"{d}/user"), ("close", f"{d}/user")]
    assert_closed(ns_files.fds)


def test_join_all_with_nothing_to_join(ns_files: SimpleNamespace) -> None:
    fake = OrderedFake(ns_files.events)
    join_all(fake, [])
    assert (fake.calls, ns_files.events) == ([], [])


# -- process ----------------------------------------------------------------------------------


def executable(path: Path, mode: int = 0o755) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(mode)
    return str(path)


def test_default_path_is_runcs() -> None:
    assert DEFAULT_PATH == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_find_executable_searches_path_in_order(tmp_path: Path) -> None:
    first, second, third = tmp_path / "1", tmp_path / "2", tmp_path / "3"
    executable(first / "noexec", 0o644)
    (first / "isdir").mkdir(parents=True)
    for directory in (second, third):
        executable(directory / "tool")
        executable(directory / "noexec")
        executable(directory / "isdir")
    env = {"PATH": f"{tmp_path}/missing:{first}:{second}:{third}"}
    assert find_executable("tool", env) == f"{second}/tool"
    assert find_executable("noexec", env) == f"{second}/noexec"
    assert find_executable("isdir", env) == f"{second}/isdir"
    env = {"PATH": f"{third}:{second}"}
    assert find_executable("tool", env) == f"{third}/tool"


@pytest.mark.parametrize(
    ("path", "expected"),
    [(":{d}", "./x"), ("{d}::", "{d}/x"), ("/nonexistent::{d}", "./x"), ("{d}/none:", "./x")],
)
def test_empty_path_entries_mean_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, expected: str
) -> None:
    executable(tmp_path / "here" / "x")
    executable(tmp_path / "d" / "x")
    monkeypatch.chdir(tmp_path / "here")
    d = tmp_path / "d"
    assert find_executable("x", {"PATH": path.format(d=d)}) == expected.format(d=d)


def test_names_with_a_slash_are_used_as_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = executable(tmp_path / "bin" / "tool")
    monkeypatch.chdir(tmp_path)
    empty: dict[str, str] = {"PATH": "/nonexistent"}
    assert find_executable(tool, empty) == tool
    assert find_executable("bin/tool", empty) == "bin/tool"
    assert find_executable("./bin/tool", empty) == "./bin/tool"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("{d}/plain", 'exec: "{d}/plain": permission denied'),
        ("{d}/dir", 'exec: "{d}/dir": is a directory'),
        ("{d}/missing", 'exec: "{d}/missing": no such file or directory'),
        ("plain", 'exec: "plain": executable file not found in $PATH'),
        ("dir", 'exec: "dir": executable file not found in $PATH'),
        ("missing", 'exec: "missing": executable file not found in $PATH'),
    ],
)
def test_find_executable_errors(tmp_path: Path, name: str, message: str) -> None:
    executable(tmp_path / "plain", 0o644)
    (tmp_path / "dir").mkdir()
    with pytest.raises(ContainerInitError) as caught:
        find_executable(name.format(d=tmp_path), {"PATH": str(tmp_path)})
    assert str(caught.value) == message.format(d=tmp_path)


def test_path_defaults_to_default_path(monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[str] = []

    def never(path: str) -> bool:
        tried.append(path)
        return False

    monkeypatch.setattr(process_mod, "_is_executable", never)
    with pytest.raises(ContainerInitError) as caught:
        find_executable("x", {"HOME": "/root"})
    assert str(caught.value) == 'exec: "x": executable file not found in $PATH'
    assert tried == [
        "/usr/local/sbin/x",
        "/usr/local/bin/x",
        "/usr/sbin/x",
        "/usr/bin/x",
        "/sbin/x",
        "/bin/x",
    ]


def test_build_env_later_duplicates_win() -> None:
    env = build_env({"env": ["A=1", "B=2", "A=3", "C=x=y", "EMPTY=", "B=4"]}, None)
    assert env == {"A": "3", "B": "4", "C": "x=y", "EMPTY": "", "HOME": "/"}
    assert list(env) == ["A", "B", "C", "EMPTY", "HOME"]


@pytest.mark.parametrize(
    ("entries", "home", "expected"),
    [
        ([], "/home/u", "/home/u"),
        (["PATH=/bin"], None, "/"),
        (["PATH=/bin"], "", "/"),
        (["HOME=/custom"], "/home/u", "/custom"),
        (["HOME=/first", "HOME=/second"], "/home/u", "/second"),
    ],
)
def test_build_env_home(entries: list[str], home: str | None, expected: str) -> None:
    assert build_env({"env": entries}, home)["HOME"] == expected
    assert build_env({}, "/h") == {"HOME": "/h"}


def test_build_env_replaces_an_empty_home_like_runc() -> None:
    assert build_env({"env": ["HOME="]}, "/home/u")["HOME"] == "/home/u"


PASSWD = b"""root:x:0:0:root:/root:/bin/bash
malformed line without colons
short:x:1000:1000
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin

u:x:1000:1000:User:/home/u:/bin/sh
nohome:x:1001:1001:gecos:/home/nohome
dup:x:1000:1000::/home/dup:/bin/sh
bad\xff:x:1002:1002::/home/b\xffd:/bin/sh
"""


@pytest.fixture
def passwd(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    opened: list[str] = []
    real_open = builtins.open

    def fake_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if file == "/etc/passwd":
            opened.append(file)
            return io.BytesIO(PASSWD)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    return opened


@pytest.mark.parametrize(
    ("uid", "home"),
    [
        (0, "/root"),
        (1, "/usr/sbin"),
        (1000, "/home/u"),  # the malformed "short" line with uid 1000 is skipped
        (1001, "/home/nohome"),  # exactly six fields
        (1002, "/home/b\ufffdd"),
        (4242, None),
    ],
)
def test_home_of(passwd: list[str], uid: int, home: str | None) -> None:
    assert home_of(uid) == home
    assert passwd == ["/etc/passwd"]


def test_home_of_without_a_passwd_file(monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = builtins.open

    def fake_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if file == "/etc/passwd":
            raise FileNotFoundError(ENOENT, "No such file or directory", file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    assert home_of(0) is None


def test_switch_user_order() -> None:
    fake = FakeSyscalls()
    switch_user(fake, {"uid": 1000, "gid": 100, "additionalGids": [5, 20]})
    assert fake.calls == [
        ("call", ("setgroups", "[5, 20]", [5, 20])),
        ("call", ("setresgid", "100", 100, 100, 100)),
        ("call", ("setresuid", "1000", 1000, 1000, 1000)),
    ]


def test_switch_user_without_setgroups_and_defaults() -> None:
    fake = FakeSyscalls()
    switch_user(fake, {"uid": 7, "gid": 8, "additionalGids": [9]}, setgroups_allowed=False)
    assert fake.calls == [
        ("call", ("setresgid", "8", 8, 8, 8)),
        ("call", ("setresuid", "7", 7, 7, 7)),
    ]
    fake = FakeSyscalls()
    switch_user(fake, {})
    assert fake.calls == [
        ("call", ("setgroups", "[]", [])),
        ("call", ("setresgid", "0", 0, 0, 0)),
        ("call", ("setresuid", "0", 0, 0, 0)),
    ]


@pytest.fixture
def rlimits(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, tuple[int, int]]]:
    calls: list[tuple[int, tuple[int, int]]] = []

    def fake_set(number: int, limits: tuple[int, int]) -> None:
        calls.append((number, limits))
        if number == 7:  # RLIMIT_NOFILE
            raise OSError(EPERM, "Operation not permitted")
        if number == 4:  # RLIMIT_CORE
            raise ValueError("not allowed to raise maximum limit")

    monkeypatch.setattr(resource, "setrlimit", fake_set)
    monkeypatch.setattr(resource, "getrlimit", lambda number: (1024, resource.RLIM_INFINITY))
    return calls


def test_apply_rlimits_passes_the_limits(rlimits: list[Any]) -> None:
    apply_rlimits(
        [
            {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200},
            {"type": "RLIMIT_AS", "soft": 2**64 - 1, "hard": 2**64 - 1},
            {"type": "RLIMIT_STACK", "soft": 8388608, "hard": -1},
        ]
    )
    infinity = resource.RLIM_INFINITY
    assert rlimits == [(6, (100, 200)), (9, (infinity, infinity)), (3, (8388608, infinity))]


def test_apply_rlimits_error_names_the_limit(rlimits: list[Any]) -> None:
    with pytest.raises(LinuxError) as caught:
        apply_rlimits(
            [
                {"type": "RLIMIT_NOFILE", "soft": 4096, "hard": 1048576},
                {"type": "RLIMIT_NPROC", "soft": 1, "hard": 1},
            ]
        )
    assert (caught.value.operation, caught.value.errno) == ("setrlimit", EPERM)
    assert str(caught.value) == (
        "setrlimit RLIMIT_NOFILE to soft=4096 hard=1048576"
        " (current soft=1024 hard=unlimited; raising a hard limit needs CAP_SYS_RESOURCE"
        " and stays within the system's maximum): operation not permitted"
    )
    assert rlimits == [(7, (4096, 1048576))]  # it stops at the first failure


def test_apply_rlimits_value_error_reads_as_eperm(rlimits: list[Any]) -> None:
    with pytest.raises(LinuxError) as caught:
        apply_rlimits([{"type": "RLIMIT_CORE", "soft": 10, "hard": 20}])
    assert caught.value.errno == EPERM
    assert str(caught.value).startswith("setrlimit RLIMIT_CORE to soft=10 hard=20 (current soft=")


@pytest.mark.parametrize(
    ("hostname", "domainname", "calls"),
    [
        ("box", "example.org", [("sethostname", ("box",)), ("setdomainname", ("example.org",))]),
        ("box", None, [("sethostname", ("box",))]),
        ("", "example.org", [("setdomainname", ("example.org",))]),
        (None, "", []),
        (None, None, []),
    ],
)
def test_set_names_sets_only_non_empty_names(
    hostname: str | None, domainname: str | None, calls: list[Any]
) -> None:
    fake = FakeSyscalls()
    set_names(fake, hostname, domainname)
    assert fake.calls == calls


# -- parse_signal -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("KILL", 9),
        ("SIGKILL", 9),
        ("kill", 9),
        ("sigkill", 9),
        ("SigTerm", 15),
        ("HUP", 1),
        ("SIGUSR1", 10),
        ("USR2", 12),
        ("CHLD", 17),
        ("IOT", 6),
        ("POLL", 29),
        ("SYS", 31),
        ("WINCH", 28),
        ("RTMIN", 34),
        ("SIGRTMIN", 34),
        ("RTMIN+1", 35),
        ("rtmin+30", 64),
        ("SIGRTMIN+0", 34),
        ("RTMAX", 64),
        ("sigrtmax", 64),
        ("RTMAX-1", 63),
        ("RTMAX-30", 34),
        (" 9 ", 9),
        ("\tSIGHUP\n", 1),
        ("  rtmin+2  ", 36),
    ],
)
def test_parse_signal(text: str, number: int) -> None:
    assert parse_signal(text) == number


def test_parse_signal_numbers_1_to_64() -> None:
    assert [parse_signal(str(n)) for n in range(1, 65)] == list(range(1, 65))
    assert parse_signal("015") == 15


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "65",
        "-1",
        "+9",
        "1e1",
        "",
        "   ",
        "SIG",
        "NOPE",
        "SIGNOPE",
        "SIG9",
        "KILL9",
        "RTMIN+",
        "RTMIN+31",
        "RTMIN-1",
        "RTMAX-",
        "RTMAX-31",
        "RTMAX+1",
        "RTMIN+-1",
        "\u0663",
        "\u0661\u0665",
        "\uff19",
    ],
)
def test_parse_signal_refuses(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_signal(text)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize("text", ["RTMIN+\u0663", "RTMAX-\u0663", "RTMIN+\uff11"])
def test_parse_signal_refuses_non_ascii_rt_offsets(text: str) -> None:
    with pytest.raises(ValueError):
        parse_signal(text)
