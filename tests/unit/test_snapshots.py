"""Snapshotter logic without root: chain ids, the vfs diff, changeset -> tar (whiteouts,
opaque markers, hardlinks, xattrs), mountinfo parsing, commit's -c changes, ids."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from imagetools.errors import ImageError
from imagetools.instructions import apply_changes
from imagetools.snapshots.chain import chain_ids
from imagetools.snapshots.changes import (
    ENTRY,
    FRESH_NS,
    OPAQUE,
    WHITEOUT,
    Change,
    scan,
    vfs_changes,
)
from imagetools.snapshots.layout import Layout, valid_id
from imagetools.snapshots.overlay import parse_stack
from imagetools.snapshots.tarwriter import write_layer

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
D3 = "sha256:" + "c" * 64


# -- chain ids -----------------------------------------------------------------------------------
def test_chain_ids_follow_the_image_spec_formula() -> None:
    two = "sha256:" + hashlib.sha256(f"{D1} {D2}".encode()).hexdigest()
    three = "sha256:" + hashlib.sha256(f"{two} {D3}".encode()).hexdigest()
    assert chain_ids([D1, D2, D3]) == [D1, two, three]
    assert chain_ids([]) == []


def test_chain_ids_differ_by_order_and_share_prefixes() -> None:
    assert chain_ids([D1, D2])[-1] != chain_ids([D2, D1])[-1]
    assert chain_ids([D1, D2, D3])[:2] == chain_ids([D1, D2])


# -- the vfs diff --------------------------------------------------------------------------------
def _tree(root: Path) -> None:
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "etc/keep").write_text("same")
    (root / "gone").mkdir()
    (root / "gone/child").write_text("x")
    (root / "deep/er/est").mkdir(parents=True)
    (root / "deep/er/est/file").write_text("old")
    (root / "was-dir").mkdir()
    (root / "was-dir/inner").write_text("x")
    (root / "was-file").write_text("x")
    os.symlink("/etc/passwd", root / "link")


def _scan_settled(root: Path) -> dict[str, Any]:
    """Scan once the tree's ctimes are older than the fresh window (else all count)."""
    time.sleep(FRESH_NS / 1e9 + 0.01)
    return scan(str(root))


def _same_tick(base: dict[str, Any], root: Path) -> None:
    """Make the base's ctimes the tree's current ones: a coarse clock that did not tick
    between the scan and the changes made since (ctime then cannot see them)."""
    for entry in base["entries"]:
        entry[6] = os.lstat(root / entry[0]).st_ctime_ns


def test_paths_fresh_at_the_scan_count_only_when_changed(tmp_path: Path) -> None:
    _tree(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    base = scan(str(tmp_path))  # right after the writes: every ctime is in the fresh window
    assert all(entry[8] for entry in base["entries"])  # so each has a fingerprint
    assert list(vfs_changes(str(tmp_path), base)) == []
    assert list(vfs_changes(str(tmp_path), base)) == []  # and again: no timing involved


def test_a_fresh_file_rewritten_in_the_same_clock_tick_counts(tmp_path: Path) -> None:
    _tree(tmp_path)
    base = scan(str(tmp_path))
    keep, passwd = tmp_path / "etc/keep", tmp_path / "etc/passwd"
    before = os.lstat(keep)
    keep.write_text("SAME")  # same size, mtime put back (touch -r)
    os.utime(keep, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.setxattr(passwd, "user.note", b"x")
    _same_tick(base, tmp_path)
    assert _changes(list(vfs_changes(str(tmp_path), base))) == [
        (ENTRY, "etc"),
        (ENTRY, "etc/keep"),
        (ENTRY, "etc/passwd"),
    ]


def test_a_fresh_path_without_a_fingerprint_always_counts(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    (tmp_path / "g").write_text("y")
    base = scan(str(tmp_path))
    del base["entries"][0][8:]  # a version 1 manifest
    base["entries"][1][8] = None  # unreadable at the scan
    assert _changes(list(vfs_changes(str(tmp_path), base))) == [(ENTRY, "f"), (ENTRY, "g")]


def test_settled_paths_are_never_hashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imagetools.snapshots import changes

    _tree(tmp_path)
    base = _scan_settled(tmp_path)
    assert [entry[8] for entry in base["entries"]] == [""] * len(base["entries"])

    def refuse(source: str, info: os.stat_result) -> str:
        raise AssertionError(f"hashed {source}")

    monkeypatch.setattr(changes, "fingerprint", refuse)
    (tmp_path / "etc/keep").write_text("changed")
    assert _changes(list(vfs_changes(str(tmp_path), base))) == [
        (ENTRY, "etc"),
        (ENTRY, "etc/keep"),
    ]


def _changes(items: list[Change]) -> list[tuple[str, str]]:
    return [(c.kind, c.path) for c in items]


def test_vfs_diff_finds_added_changed_removed_and_replaced(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    _tree(root)
    base = _scan_settled(root)
    assert [e[0] for e in base["entries"]][:3] == ["deep", "deep/er", "deep/er/est"]
    assert list(vfs_changes(str(root), base)) == []

    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/ash\n")  # changed content
    (root / "etc/new").write_text("new")  # added
    (root / "gone/child").unlink()
    (root / "gone").rmdir()  # removed dir: one whiteout, not one per child
    (root / "deep/er/est/file").write_text("new")  # deep change: parents come along
    (root / "was-dir/inner").unlink()
    (root / "was-dir").rmdir()
    (root / "was-dir").write_text("now a file")
    (root / "was-file").unlink()
    (root / "was-file").mkdir()
    (root / "was-file/child").write_text("c")
    (root / "link").unlink()
    os.symlink("/etc/keep", root / "link")  # retargeted symlink
    changes = _changes(list(vfs_changes(str(root), base)))
    assert changes == [
        (ENTRY, "deep"),
        (ENTRY, "deep/er"),
        (ENTRY, "deep/er/est"),
        (ENTRY, "deep/er/est/file"),
        (ENTRY, "etc"),
        (ENTRY, "etc/new"),
        (ENTRY, "etc/passwd"),
        (WHITEOUT, "gone"),
        (ENTRY, "link"),
        (ENTRY, "was-dir"),
        (ENTRY, "was-file"),
        (ENTRY, "was-file/child"),
    ]


def test_vfs_diff_sees_chmod_and_a_replaced_directory(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    _tree(root)
    base = _scan_settled(root)
    os.chmod(root / "etc/keep", 0o600)  # metadata only: ctime moves
    for child in (root / "deep/er/est").iterdir():
        child.unlink()
    (root / "deep/er/est").rmdir()
    (root / "deep/er/est").mkdir()  # same name, new inode: old children are whiteouts
    (root / "deep/er/est/other").write_text("o")
    changes = _changes(list(vfs_changes(str(root), base)))
    assert changes == [
        (ENTRY, "deep"),
        (ENTRY, "deep/er"),
        (ENTRY, "deep/er/est"),
        (WHITEOUT, "deep/er/est/file"),
        (ENTRY, "deep/er/est/other"),
        (ENTRY, "etc"),
        (ENTRY, "etc/keep"),
    ]


# -- changeset -> tar ----------------------------------------------------------------------------
def _members(blob: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as archive:
        return archive.getmembers()


def test_tar_writer_writes_whiteouts_opaque_markers_and_hardlinks(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d/a").write_text("data")
    os.link(tmp_path / "d/a", tmp_path / "d/b")
    os.symlink("../d/a", tmp_path / "s")
    os.mkfifo(tmp_path / "p")
    os.setxattr(tmp_path / "d/a", "user.note", b"\xffbinary")
    src = str(tmp_path)
    changes = [
        Change(ENTRY, "d", f"{src}/d"),
        Change(OPAQUE, "d"),
        Change(ENTRY, "d/a", f"{src}/d/a"),
        Change(ENTRY, "d/b", f"{src}/d/b"),
        Change(WHITEOUT, "d/gone"),
        Change(WHITEOUT, "top"),
        Change(ENTRY, "p", f"{src}/p"),
        Change(ENTRY, "s", f"{src}/s"),
    ]
    out = io.BytesIO()
    layer = write_layer(changes, out)
    blob = out.getvalue()
    assert layer.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert layer.size == len(blob)
    import gzip

    assert layer.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest()
    members = {m.name: m for m in _members(blob)}
    assert list(members) == ["d", "d/.wh..wh..opq", "d/a", "d/b", "d/.wh.gone", ".wh.top", "p", "s"]
    assert members["d"].isdir()
    assert members["d/a"].isfile() and members["d/a"].size == 4
    assert members["d/b"].islnk() and members["d/b"].linkname == "d/a"
    assert members["s"].issym() and members["s"].linkname == "../d/a"
    assert members["p"].isfifo()
    assert members["d/.wh.gone"].isfile() and members["d/.wh.gone"].size == 0
    raw = members["d/a"].pax_headers["SCHILY.xattr.user.note"]
    assert raw.encode("utf-8", "surrogateescape") == b"\xffbinary"


def test_tar_writer_is_deterministic(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    changes = [Change(ENTRY, "f", str(tmp_path / "f")), Change(WHITEOUT, "g")]
    first, second = io.BytesIO(), io.BytesIO()
    assert write_layer(changes, first).digest == write_layer(changes, second).digest
    assert first.getvalue() == second.getvalue()


def test_tar_writer_leaves_overlay_xattrs_out(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    os.setxattr(tmp_path / "f", "user.overlay.origin", b"x")
    os.setxattr(tmp_path / "f", "user.kept", b"y")
    out = io.BytesIO()
    write_layer([Change(ENTRY, "f", str(tmp_path / "f"))], out)
    (member,) = _members(out.getvalue())
    assert set(member.pax_headers) == {"SCHILY.xattr.user.kept"}


# -- mountinfo -----------------------------------------------------------------------------------
MOUNTINFO = (
    "45 27 0:39 / /b/root\\040fs rw,relatime - overlay overlay rw,lowerdir=l/x:l/y,"
    "upperdir=/s/bundles/1/upper,workdir=/s/bundles/1/work\n"
    "46 45 0:40 / /b/root\\040fs rw - tmpfs tmpfs rw\n"
    "47 27 0:41 / /other rw - overlay overlay rw,lowerdir=a\n"
)


def test_mount_stack_reads_overlays_bottom_to_top() -> None:
    assert parse_stack(MOUNTINFO, "/b/root fs") == ["/s/bundles/1/upper", None]
    assert parse_stack(MOUNTINFO, "/other") == [""]
    assert parse_stack(MOUNTINFO, "/b") == []


# -- ids and paths -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "ok"),
    [("0123456789abcdef", True), ("../../etc", False), ("ABCDEF0123456789", False), ("ab", False)],
)
def test_snapshot_ids_are_plain_hex(value: str, ok: bool) -> None:
    assert valid_id(value) is ok


def test_bundle_dir_refuses_a_forged_id() -> None:
    with pytest.raises(ImageError):
        Layout("/s").bundle_dir("../../etc/passwd")
    assert Layout("/s/").bundle_dir("0123456789abcdef") == "/s/snapshots/bundles/0123456789abcdef"


# -- commit -c -------------------------------------------------------------------------------------
def test_changes_like_docker_commit() -> None:
    base = {"Env": ["PATH=/bin", "A=old"], "Cmd": ["sh"], "Labels": {"x": "1"}}
    result = apply_changes(
        base,
        [
            'CMD ["/bin/echo", "hi"]',
            "ENV A=new B='two words'",
            "ENV C spaced value",
            "WORKDIR /srv",
            "USER 1000:1000",
            'LABEL y="a b" x=2',
            "EXPOSE 80 53/udp",
            'VOLUME ["/data"]',
            "volume /logs /cache",
        ],
    )
    assert result == {
        "Env": ["PATH=/bin", "A=new", "B=two words", "C=spaced value"],
        "Cmd": ["/bin/echo", "hi"],
        "Labels": {"x": "2", "y": "a b"},
        "WorkingDir": "/srv",
        "User": "1000:1000",
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
        "Volumes": {"/data": {}, "/logs": {}, "/cache": {}},
    }
    assert base["Env"] == ["PATH=/bin", "A=old"]  # the base is not changed in place
    shell = apply_changes({"Cmd": ["x"]}, ["ENTRYPOINT exec top -b"])
    assert shell == {"Entrypoint": ["/bin/sh", "-c", "exec top -b"]}


@pytest.mark.parametrize(
    "changes",
    [
        ["CMD echo hi", 'ENTRYPOINT ["/bin/sh", "-c"]'],
        ['ENTRYPOINT ["/bin/sh", "-c"]', "CMD echo hi"],
        ["cmd echo hi", "ENV A=1", 'entrypoint ["/bin/sh", "-c"]'],
    ],
)
def test_entrypoint_keeps_a_cmd_of_the_same_change_list(changes: list[str]) -> None:
    result = apply_changes({"Cmd": ["inherited"]}, changes)
    assert result["Entrypoint"] == ["/bin/sh", "-c"]
    assert result["Cmd"] == ["/bin/sh", "-c", "echo hi"]


def test_entrypoint_resets_only_an_inherited_cmd() -> None:
    result = apply_changes({"Cmd": ["inherited"], "Env": ["A=1"]}, ['ENTRYPOINT ["top"]'])
    assert result == {"Entrypoint": ["top"], "Env": ["A=1"]}


@pytest.mark.parametrize(
    "change", ["RUN make", "CMD", "EXPOSE http", "LABEL novalue", 'CMD ["x", 1]', "USER a b"]
)
def test_bad_changes_are_refused_with_the_change_named(change: str) -> None:
    with pytest.raises(ImageError) as caught:
        apply_changes({}, [change])
    assert change in caught.value.message


# -- the fast unpack command line ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "parsed"),
    [
        (["unpack", "busybox", "b"], (None, None, "busybox", "b")),
        (
            ["--root", "/r", "unpack", "--snapshotter", "overlay", "x", "b"],
            ("/r", "overlay", "x", "b"),
        ),
        (["--root=/r", "unpack", "x", "--snapshotter=overlay", "b"], ("/r", "overlay", "x", "b")),
        (["unpack", "--snapshotter", "vfs", "x", "b"], None),
        (["unpack", "--force", "x", "b"], None),
        (["unpack", "--help"], None),
        (["unpack", "x"], None),
        (["ls"], None),
        (["unpack", "x", "b", "c"], None),
    ],
)
def test_fast_unpack_takes_only_the_plain_shape(
    args: list[str], parsed: tuple[str | None, ...] | None
) -> None:
    from imagetools.quick import split
    from imagetools.snapshots.quick import _parse

    routed = split(args)
    if routed is None or routed[1] != "unpack":
        assert parsed is None
        return
    options = _parse(routed[2])
    assert (None if options is None else (routed[0], *options)) == parsed


@pytest.mark.parametrize("path", ["a", "a/", "./a/./b//", "/a/b/", "//a", "///a", ".", "./", "/"])
def test_fast_unpack_prints_the_bundle_as_pathlib_does(path: str) -> None:
    from imagetools.snapshots.quick import _as_pathlib_prints

    assert _as_pathlib_prints(path) == str(Path(path))
