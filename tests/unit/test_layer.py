"""apply_layer: the layer semantics, on tars built in memory (no root: rootless=True, so no
chown and no device nodes; ownership, devices and overlay whiteouts are in
tests/integration/test_unpack_root.py)."""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

import pytest

from imagetools.errors import UnpackError
from imagetools.layer import LayerResult, read_file_in_root
from tests.support import layers
from tests.support.layers import (
    GZIP,
    MTIME,
    PLAIN,
    ZSTD,
    Member,
    chardev,
    directory,
    fifo,
    file,
    gz,
    hardlink,
    opaque,
    sha256,
    symlink,
    tar,
    whiteout,
    zst,
)


def apply(root: Path, data: bytes, media: str = PLAIN, **kw: object) -> LayerResult:
    kw.setdefault("rootless", True)
    return layers.apply(root, data, media, **kw)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "rootfs"
    path.mkdir()
    return path


def tree(root: Path) -> dict[str, str]:
    """path -> "d", "f:<content>", "l:<target>", "p" (fifo) for a compact comparison."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                found[rel] = f"l:{os.readlink(path)}"
            elif stat.S_ISDIR(info.st_mode):
                found[rel] = "d"
            elif stat.S_ISFIFO(info.st_mode):
                found[rel] = "p"
            else:
                found[rel] = f"f:{Path(path).read_bytes().decode()}"
    return found


# -- entry kinds and attributes -----------------------------------------------------------------


def test_files_dirs_symlinks_fifos_with_modes_and_times(root: Path) -> None:
    data = tar(
        directory("usr", mode=0o755, mtime=MTIME + 1),
        directory("usr/bin", mode=0o750, mtime=MTIME + 2),
        file("usr/bin/tool", b"#!/bin/sh\n", mode=0o4755, mtime=MTIME + 3),
        file("usr/bin/sticky", b"x", mode=0o1644),
        symlink("usr/bin/abs", "/usr/bin/tool", mtime=MTIME + 4),
        symlink("usr/bin/dangling", "../nowhere"),
        fifo("usr/pipe", mode=0o640),
        file("top", b"hello", mode=0o600, pax={"mtime": f"{MTIME}.123456789"}),
    )
    result = apply(root, data)
    assert result.entries == 8
    assert result.diff_id == sha256(data)
    assert result.size == len(data)
    assert tree(root) == {
        "usr": "d",
        "usr/bin": "d",
        "usr/bin/tool": "f:#!/bin/sh\n",
        "usr/bin/sticky": "f:x",
        "usr/bin/abs": "l:/usr/bin/tool",
        "usr/bin/dangling": "l:../nowhere",
        "usr/pipe": "p",
        "top": "f:hello",
    }
    assert stat.S_IMODE(os.lstat(root / "usr/bin/tool").st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(root / "usr/bin/sticky").st_mode) == 0o1644
    assert stat.S_IMODE(os.lstat(root / "usr/bin").st_mode) == 0o750
    assert stat.S_IMODE(os.lstat(root / "usr/pipe").st_mode) == 0o640
    # Times: directories after their children were written; symlinks' own time.
    assert os.lstat(root / "usr").st_mtime_ns == (MTIME + 1) * 10**9
    assert os.lstat(root / "usr/bin").st_mtime_ns == (MTIME + 2) * 10**9
    assert os.lstat(root / "usr/bin/tool").st_mtime_ns == (MTIME + 3) * 10**9
    assert os.lstat(root / "usr/bin/abs").st_mtime_ns == (MTIME + 4) * 10**9
    assert os.lstat(root / "top").st_mtime_ns == MTIME * 10**9 + 123456789


def test_compressions_give_the_same_tree_and_diff_id(tmp_path: Path) -> None:
    data = tar(directory("a"), file("a/b", b"x" * 100_000), symlink("c", "a/b"))
    results = {}
    for index, (media, blob) in enumerate(((PLAIN, data), (GZIP, gz(data)), (ZSTD, zst(data)))):
        target = tmp_path / f"r{index}"
        target.mkdir()
        results[media] = apply(
            target, blob, media, digest=sha256(blob), expected_diff_id=sha256(data)
        )
        assert tree(target) == {"a": "d", "a/b": "f:" + "x" * 100_000, "c": "l:a/b"}
    assert {r.diff_id for r in results.values()} == {sha256(data)}


def test_multi_member_gzip_and_trailing_padding_are_in_the_diff_id(root: Path) -> None:
    data = tar(file("one", b"1"), file("two", b"2")) + bytes(10240)  # extra zero records
    blob = gz(data[:1024]) + gz(data[1024:])  # pigz-style: two members
    result = apply(root, blob, GZIP)
    assert result.diff_id == sha256(data)
    assert tree(root) == {"one": "f:1", "two": "f:2"}


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT])
def test_long_names_in_every_tar_format(root: Path, fmt: int) -> None:
    deep = "/".join(["d" * 50] * 3)  # 152 bytes: GNU longname, ustar prefix, PAX path
    target = "t" * 90 if fmt == tarfile.USTAR_FORMAT else "t" * 150
    data = tar(directory(deep), file(f"{deep}/f", b"x"), symlink("s", target), fmt=fmt)
    apply(root, data)
    assert (root / deep / "f").read_bytes() == b"x"
    assert os.readlink(root / "s") == target


def test_gnu_base256_numbers(root: Path) -> None:
    member = file("big", b"x", mtime=2**33 + 12345)  # larger than 11 octal digits
    apply(root, tar(member, fmt=tarfile.GNU_FORMAT))
    assert os.lstat(root / "big").st_mtime == 2**33 + 12345


def test_xattrs_from_schily_and_libarchive_records(root: Path) -> None:
    import base64

    data = tar(
        file("f", b"x", pax={"SCHILY.xattr.user.one": "1"}),
        directory("d", pax={"LIBARCHIVE.xattr.user.two%20x": base64.b64encode(b"\0bin").decode()}),
    )
    try:
        os.setxattr(root, "user.probe", b"1")
    except OSError:
        pytest.skip("this filesystem has no user xattrs")
    result = apply(root, data)
    assert os.getxattr(root / "f", "user.one") == b"1"
    assert os.getxattr(root / "d", "user.two x") == b"\0bin"
    assert result.warnings == []


def test_overlay_xattrs_from_an_image_are_dropped_with_a_warning(root: Path) -> None:
    data = tar(directory("d", pax={"SCHILY.xattr.trusted.overlay.redirect": "/etc"}))
    result = apply(root, data)
    assert any("trusted.overlay.redirect dropped" in w for w in result.warnings)


def test_devices_rootless_become_placeholders_with_a_warning(root: Path) -> None:
    result = apply(root, tar(directory("dev"), chardev("dev/null", 1, 3), fifo("dev/fifo")))
    info = os.lstat(root / "dev/null")
    assert stat.S_ISREG(info.st_mode) and info.st_size == 0
    assert stat.S_IMODE(info.st_mode) == 0o666
    assert stat.S_ISFIFO(os.lstat(root / "dev/fifo").st_mode)
    assert len(result.warnings) == 1
    assert "'dev/null'" in result.warnings[0] or "dev/null" in result.warnings[0]
    assert "placeholder" in result.warnings[0]


def test_missing_parents_are_created(root: Path) -> None:
    apply(root, tar(file("a/b/c", b"x")))
    assert stat.S_IMODE(os.lstat(root / "a/b").st_mode) == 0o755
    assert (root / "a/b/c").read_bytes() == b"x"


def test_root_directory_entry_takes_attributes_only(root: Path) -> None:
    apply(root, tar(directory("./", mode=0o750), file("f")))
    assert stat.S_IMODE(os.lstat(root).st_mode) == 0o750
    assert os.lstat(root).st_mtime == MTIME


# -- hardlinks ----------------------------------------------------------------------------------


def test_hardlinks_to_this_layer_and_to_lower_layers(root: Path) -> None:
    apply(root, tar(file("lower", b"L")))
    apply(root, tar(file("a", b"A"), hardlink("b", "a"), hardlink("c", "/lower")))
    assert os.lstat(root / "a").st_ino == os.lstat(root / "b").st_ino
    assert os.lstat(root / "c").st_ino == os.lstat(root / "lower").st_ino
    assert os.lstat(root / "a").st_nlink == 2


def test_hardlink_before_its_target_fails(root: Path) -> None:
    with pytest.raises(UnpackError, match=r"entry 'b': hardlink target 'a' does not exist"):
        apply(root, tar(hardlink("b", "a"), file("a", b"A")))


def test_hardlink_to_a_symlink_links_the_symlink(root: Path) -> None:
    apply(root, tar(symlink("s", "/nowhere"), hardlink("h", "s")))
    assert os.readlink(root / "h") == "/nowhere"
    assert os.lstat(root / "h").st_ino == os.lstat(root / "s").st_ino


# -- whiteouts and duplicates ---------------------------------------------------------------------


def test_whiteout_removes_lower_files_and_directories(root: Path) -> None:
    apply(
        root,
        tar(
            directory("d"),
            file("d/f", b"1"),
            file("d/g", b"2"),
            directory("d/sub"),
            file("d/sub/x", b"3"),
            file("keep", b"k"),
        ),
    )
    result = apply(root, tar(whiteout("d/f"), whiteout("d/sub"), whiteout("nothing")))
    assert tree(root) == {"d": "d", "d/g": "f:2", "keep": "f:k"}
    assert result.entries == 3


def test_whiteout_never_removes_an_entry_of_its_own_layer(root: Path) -> None:
    apply(root, tar(file("a", b"lower"), directory("d"), file("d/old", b"o")))
    apply(root, tar(file("a", b"upper"), whiteout("a"), file("d/new", b"n"), whiteout("d")))
    assert tree(root) == {"a": "f:upper", "d": "d", "d/new": "f:n"}


def test_opaque_directory_hides_lower_children_in_any_order(root: Path) -> None:
    apply(
        root,
        tar(
            directory("d"),
            file("d/old", b"o"),
            directory("d/olddir"),
            file("d/olddir/x", b"x"),
            file("other", b"k"),
        ),
    )
    apply(
        root,
        tar(directory("d", mode=0o700), file("d/new1", b"1"), opaque("d"), file("d/new2", b"2")),
    )
    assert tree(root) == {"d": "d", "d/new1": "f:1", "d/new2": "f:2", "other": "f:k"}
    assert stat.S_IMODE(os.lstat(root / "d").st_mode) == 0o700


def test_bare_whiteout_is_an_error(root: Path) -> None:
    for name in (".wh.", "d/.wh..", "d/.wh..."):
        with pytest.raises(UnpackError, match="a whiteout without a name"):
            apply(root, tar(file(name)))


def test_aufs_metadata_is_skipped(root: Path) -> None:
    apply(
        root,
        tar(
            directory(".wh..wh.plnk"),
            file(".wh..wh.plnk/123.456", b"x"),
            file(".wh..wh.aufs"),
            file("kept", b"k"),
        ),
    )
    # The .wh..wh.plnk directory entry itself is an ordinary name (never created as
    # metadata dirs by OCI tools); only .wh..wh.* leaf names are skipped.
    assert "kept" in tree(root)
    assert ".wh..wh.aufs" not in tree(root)


def test_duplicate_paths_last_wins(root: Path) -> None:
    apply(
        root,
        tar(
            file("f", b"first"),
            file("f", b"second", mode=0o600),
            file("x", b"file"),
            directory("x", mode=0o711),
            directory("y"),
            file("y/child", b"c"),
            file("y", b"now a file"),
            directory("z", mode=0o700),
            directory("z", mode=0o755),
        ),
    )
    assert tree(root) == {"f": "f:second", "x": "d", "y": "f:now a file", "z": "d"}
    assert stat.S_IMODE(os.lstat(root / "f").st_mode) == 0o600
    assert stat.S_IMODE(os.lstat(root / "x").st_mode) == 0o711
    assert stat.S_IMODE(os.lstat(root / "z").st_mode) == 0o755


def test_existing_directory_keeps_its_children_and_takes_new_attributes(root: Path) -> None:
    apply(root, tar(directory("d", mode=0o755), file("d/lower", b"l")))
    apply(root, tar(directory("d", mode=0o700, mtime=MTIME + 9)))
    assert tree(root) == {"d": "d", "d/lower": "f:l"}
    assert stat.S_IMODE(os.lstat(root / "d").st_mode) == 0o700
    assert os.lstat(root / "d").st_mtime == MTIME + 9


def test_a_new_entry_replaces_a_lower_one_of_another_kind(root: Path) -> None:
    apply(root, tar(directory("a"), file("a/x"), symlink("b", "a"), file("c", b"c")))
    apply(root, tar(file("a", b"was a dir"), directory("b"), symlink("c", "/b")))
    assert tree(root) == {"a": "f:was a dir", "b": "d", "c": "l:/b"}


def test_entries_through_a_symlinked_directory_land_in_its_target(root: Path) -> None:
    apply(
        root,
        tar(
            directory("usr/lib"),
            symlink("lib", "usr/lib"),
            file("lib/x.so", b"so"),
            symlink("abs", "/usr"),
            file("abs/lib/y.so", b"y"),
        ),
    )
    assert tree(root)["usr/lib/x.so"] == "f:so"
    assert tree(root)["usr/lib/y.so"] == "f:y"


# -- bad streams and checks ----------------------------------------------------------------------


def test_wrong_diff_id_is_an_error_naming_both(root: Path) -> None:
    data = tar(file("f", b"x"))
    wrong = sha256(b"something else")
    with pytest.raises(UnpackError, match=f"diff_id {sha256(data)}.*says {wrong}"):
        apply(root, gz(data), GZIP, expected_diff_id=wrong, digest=sha256(gz(data)))


def test_wrong_blob_digest_is_an_error(root: Path) -> None:
    blob = gz(tar(file("f", b"x")))
    wrong = sha256(b"other")
    with pytest.raises(UnpackError, match=f"layer {wrong}: the blob's content has digest"):
        apply(root, blob, GZIP, digest=wrong)


def test_truncated_layers_are_errors(tmp_path: Path) -> None:
    data = tar(file("big", os.urandom(200_000)), file("after", b"a"))
    cases = [
        (PLAIN, data[:100_000], "truncated tar stream"),
        (GZIP, gz(data)[: len(gz(data)) // 2], "truncated gzip stream"),
        (ZSTD, zst(data)[: len(zst(data)) // 2], "truncated|corrupt"),
    ]
    for index, (media, blob, message) in enumerate(cases):
        target = tmp_path / f"r{index}"
        target.mkdir()
        with pytest.raises(UnpackError, match=message):
            apply(target, blob, media)


def test_garbage_is_an_error(root: Path) -> None:
    with pytest.raises(UnpackError, match="not a tar stream"):
        apply(root, b"x" * 1024)
    with pytest.raises(UnpackError, match="corrupt gzip"):
        apply(root, b"\x1f\x8b" + b"x" * 100, GZIP)
    with pytest.raises(UnpackError, match="data after the end of the gzip stream"):
        apply(root, gz(tar(file("f"))) + b"junk", GZIP)
    with pytest.raises(UnpackError, match="media type 'application/x-rar'"):
        apply(root, b"", "application/x-rar")


def test_gzip_bomb_stops_at_the_limit_before_writing(root: Path) -> None:
    huge = tar(file("bomb", bytes(64 << 20)))  # 64 MiB of zeros: ~64 KiB gzipped
    blob = gz(huge)
    assert len(blob) < 1 << 20
    with pytest.raises(UnpackError, match=r"entry 'bomb': 67108864 bytes .* decompression bomb"):
        apply(root, blob, GZIP, limit=8 << 20)
    assert not (root / "bomb").exists()
    many = tar(*(file(f"f{i}", bytes(1 << 20)) for i in range(12)))
    with pytest.raises(UnpackError, match="decompression bomb"):
        apply(root, gz(many), GZIP, limit=8 << 20)


def test_long_name_and_pax_bombs_are_refused(root: Path) -> None:
    long_name = tar(file("x" * 10_000, b""), fmt=tarfile.GNU_FORMAT)
    with pytest.raises(UnpackError, match="long name of 10001 bytes"):
        apply(root, long_name)
    pax = tar(file("f", pax={"comment": "c" * (2 << 20)}))
    with pytest.raises(UnpackError, match="PAX header of"):
        apply(root, pax)
    pax_path = tar(file("f", pax={"path": "p" * 5000}))
    with pytest.raises(UnpackError, match="name longer than 4096"):
        apply(root, pax_path)


def test_errors_name_the_layer_and_the_entry(root: Path) -> None:
    blob = gz(tar(file("ok"), file("sub/../../escape")))
    digest = sha256(blob)
    with pytest.raises(UnpackError) as caught:
        apply(root, blob, GZIP, digest=digest)
    assert str(caught.value) == (
        f"layer {digest}: entry 'sub/../../escape': the name climbs out of the root (../)"
    )


# -- reading files of an image safely -----------------------------------------------------------


def test_read_file_in_root_follows_symlinks_inside_only(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "usr/share").mkdir(parents=True)
    (root / "usr/share/passwd").write_text("image\n")
    (tmp_path / "host-passwd").write_text("host\n")
    os.symlink("/usr/share/passwd", root / "etc/passwd")
    assert read_file_in_root(str(root), "/etc/passwd") == b"image\n"
    os.unlink(root / "etc/passwd")
    os.symlink(str(tmp_path / "host-passwd"), root / "etc/passwd")
    assert read_file_in_root(str(root), "/etc/passwd") is None
    os.unlink(root / "etc/passwd")
    os.symlink("../../../../../../../../host-passwd", root / "etc/passwd")
    assert read_file_in_root(str(root), "/etc/passwd") is None
    os.unlink(root / "etc/passwd")
    os.symlink("../usr/share/passwd", root / "etc/passwd")
    assert read_file_in_root(str(root), "etc/passwd") == b"image\n"
    os.unlink(root / "etc/passwd")
    os.mkfifo(root / "etc/passwd")  # never blocks on a FIFO
    assert read_file_in_root(str(root), "etc/passwd") is None


def test_member_helper_sanity() -> None:
    assert Member("x").type == tarfile.REGTYPE
