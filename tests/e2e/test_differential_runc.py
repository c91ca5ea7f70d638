"""Differential tests: the same bundle through runc 1.1.5 (the reference) and pyrun.

Each case builds one bundle, runs it with ``runc run`` and ``pyrun run`` in the foreground (or
``run -d`` where the host must look at a live container) and compares what the container, or
the host, observes. Only what must differ is normalised (see ``differential.py``); the rest is
compared for equality. Where the two differ because of code this suite may not change, the
test stays as a strict xfail whose reason names the code.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Bundles, Runtime
from tests.e2e.differential import (
    RUNC_SPEC_CAPS,
    by_mount_point,
    mounts_at,
    normalise_ps,
    parse_mountinfo,
    run_both,
    set_cgroups_path,
    sh_config,
    status_fields,
    strip_ls_times,
    wait_for_status,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs real containers: needs root")


# -- 1. exit codes and output ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "pid_namespace", "expected"),
    [
        ("echo out; echo err >&2; exit 7", True, 7),
        # In its own pid namespace the shell is pid 1: the kernel drops signals init has no
        # handler for when they come from inside, so `kill -9 $$` does nothing and sh exits 0.
        ("kill -9 $$; echo survived", True, 0),
        # Without a pid namespace the same command kills the shell: 128 + 9.
        ("kill -9 $$", False, 137),
        ("kill -TERM $$", False, 143),
    ],
    ids=["exit-7", "kill9-as-pid1", "kill9", "term"],
)
def test_exit_code_and_output(
    runc: Runtime,
    pyrun: Runtime,
    bundles: Bundles,
    script: str,
    pid_namespace: bool,
    expected: int,
) -> None:
    config = sh_config(script)
    if not pid_namespace:
        namespaces = config["linux"]["namespaces"]
        config["linux"]["namespaces"] = [ns for ns in namespaces if ns["type"] != "pid"]
    pair = run_both(runc, pyrun, bundles.make(config=config), check=False)
    assert pair.codes == (expected, expected), pair
    assert pair.pyrun.stdout == pair.runc.stdout
    assert pair.pyrun.stderr == pair.runc.stderr
    if script.startswith("echo out"):
        assert (pair.pyrun.stdout, pair.pyrun.stderr) == ("out\n", "err\n")


# -- 2. hostname and domainname -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("hostname", "domainname"), [("difftest", "example.org"), (None, None)], ids=["set", "unset"]
)
def test_hostname_and_domainname(
    runc: Runtime, pyrun: Runtime, bundles: Bundles, hostname: str | None, domainname: str | None
) -> None:
    config = sh_config("hostname; cat /proc/sys/kernel/domainname")
    config.pop("hostname", None)
    if hostname:
        config["hostname"] = hostname
        config["domainname"] = domainname
    pair = run_both(runc, pyrun, bundles.make(config=config))
    if hostname:
        # runc 1.1.5 predates `domainname` (runtime-spec 1.1, runc 1.2): it ignores the field
        # and the container keeps the host's "(none)". pyrun sets it, as the spec says.
        assert pair.runc.stdout == f"{hostname}\n(none)\n"
        assert pair.pyrun.stdout == f"{hostname}\n{domainname}\n"
    else:
        assert pair.out[1] == pair.out[0]
        # A new UTS namespace starts as a copy of the host's names.
        assert pair.pyrun.stdout == f"{os.uname().nodename}\n(none)\n"


# -- 3. capabilities and identity ---------------------------------------------------------------

_IDENTITY = "grep -E '^(Cap|Uid|Gid|Groups|NoNewPrivs)' /proc/self/status; id; echo HOME=$HOME"
_STATUS_NAMES = (
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "Uid",
    "Gid",
    "Groups",
    "NoNewPrivs",
)


def _caps_runc_spec(config: dict[str, Any]) -> None:
    sets = ("bounding", "effective", "permitted", "ambient")
    config["process"]["capabilities"] = {name: list(RUNC_SPEC_CAPS) for name in sets}


def _caps_docker(config: dict[str, Any]) -> None:
    """``pyrun spec`` already carries Docker's default set."""


def _caps_empty(config: dict[str, Any]) -> None:
    config["process"]["capabilities"] = {}


def _caps_absent(config: dict[str, Any]) -> None:
    del config["process"]["capabilities"]


def _caps_ambient(config: dict[str, Any]) -> None:
    config["process"]["noNewPrivileges"] = False
    config["process"]["capabilities"] = {
        "bounding": [*RUNC_SPEC_CAPS, "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"],
        "permitted": [*RUNC_SPEC_CAPS, "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"],
        "effective": list(RUNC_SPEC_CAPS),
        "inheritable": ["CAP_KILL", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"],
        # CAP_NET_BIND_SERVICE is not inheritable: both runtimes skip it silently.
        "ambient": ["CAP_KILL", "CAP_SYS_PTRACE", "CAP_NET_BIND_SERVICE"],
    }


def _caps_user(config: dict[str, Any]) -> None:
    config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 7]}


def _caps_user_ambient(config: dict[str, Any]) -> None:
    _caps_user(config)
    config["process"]["noNewPrivileges"] = False
    config["process"]["capabilities"]["inheritable"] = ["CAP_KILL", "CAP_CHOWN"]
    config["process"]["capabilities"]["ambient"] = ["CAP_KILL", "CAP_CHOWN"]


@pytest.mark.parametrize(
    "mutate",
    [
        _caps_runc_spec,
        _caps_docker,
        _caps_empty,
        _caps_absent,
        _caps_ambient,
        _caps_user,
        _caps_user_ambient,
    ],
    ids=[
        "runc-spec",
        "docker",
        "empty",
        "absent",
        "ambient-inheritable",
        "user-1000",
        "user-1000-ambient",
    ],
)
def test_capabilities_and_identity(
    runc: Runtime, pyrun: Runtime, bundles: Bundles, mutate: Any
) -> None:
    config = sh_config(_IDENTITY)
    mutate(config)
    pair = run_both(runc, pyrun, bundles.make(config=config))
    runc_out, pyrun_out = pair.out
    assert status_fields(pyrun_out, _STATUS_NAMES) == status_fields(runc_out, _STATUS_NAMES)
    assert len(status_fields(runc_out, _STATUS_NAMES)) == len(_STATUS_NAMES), runc_out
    assert pyrun_out == runc_out  # `id` and HOME too
    if mutate in (_caps_user, _caps_user_ambient):
        assert "uid=1000 gid=1000 groups=5(tty),7" in pyrun_out
        assert "HOME=/\n" in pyrun_out  # uid 1000 has no /etc/passwd entry
    else:
        assert "HOME=/root\n" in pyrun_out


# -- 4. mounts --------------------------------------------------------------------------------


def _mount_lines(text: str) -> str:
    """The mountinfo lines of a mixed output (a mountinfo line starts with its mount id)."""
    return "\n".join(line for line in text.splitlines() if line[:1].isdigit())


def _mountinfo(pair: Any) -> tuple[list[Any], list[Any]]:
    ids = list(pair.ids.values())
    return parse_mountinfo(pair.runc.stdout, ids), parse_mountinfo(pair.pyrun.stdout, ids)


def test_mount_table_of_the_default_config(runc: Runtime, pyrun: Runtime, bundles: Bundles) -> None:
    pair = run_both(runc, pyrun, bundles.make(config=sh_config("cat /proc/self/mountinfo")))
    runc_mounts, pyrun_mounts = _mountinfo(pair)
    assert by_mount_point(pyrun_mounts) == by_mount_point(runc_mounts)
    points = [entry.point for entry in runc_mounts]
    for expected in ("/", "/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/proc/sys"):
        assert expected in points


def test_cgroup_hierarchies_are_mounted_in_runc_order(
    runc: Runtime, pyrun: Runtime, bundles: Bundles
) -> None:
    pair = run_both(runc, pyrun, bundles.make(config=sh_config("cat /proc/self/mountinfo")))
    runc_mounts, pyrun_mounts = _mountinfo(pair)
    assert [m.point for m in pyrun_mounts] == [m.point for m in runc_mounts]


def test_cgroup_mount(runc: Runtime, pyrun: Runtime, bundles: Bundles) -> None:
    script = (
        "ls -lan /sys/fs/cgroup; grep ' /sys/fs/cgroup' /proc/self/mountinfo;"
        " cat /sys/fs/cgroup/pids/pids.max; mkdir /sys/fs/cgroup/new && echo tmpfs-writable;"
        " mkdir /sys/fs/cgroup/pids/new || echo hierarchy-read-only"
    )
    pair = run_both(runc, pyrun, bundles.make(config=sh_config(script)))
    runc_out, pyrun_out = (strip_ls_times(text) for text in pair.out)
    # Everything but the mountinfo lines (those start with a mount id), then the lines parsed.
    assert [line for line in pyrun_out.splitlines() if not line[:1].isdigit()] == [
        line for line in runc_out.splitlines() if not line[:1].isdigit()
    ]
    ids = list(pair.ids.values())
    runc_mounts = parse_mountinfo(_mount_lines(pair.runc.stdout), ids)
    pyrun_mounts = parse_mountinfo(_mount_lines(pair.pyrun.stdout), ids)
    assert len(runc_mounts) > 1
    assert by_mount_point(pyrun_mounts) == by_mount_point(runc_mounts)
    assert "tmpfs-writable" in pyrun_out and "hierarchy-read-only" in pyrun_out
    assert pair.err[1] == pair.err[0]


_MASKED_AND_READONLY = """
for p in /proc/kcore /proc/keys /proc/timer_list /proc/acpi /sys/firmware; do
  stat -c '%n %F %a %t:%T %s' $p
done
wc -c < /proc/keys
ls -A /sys/firmware /proc/acpi | wc -l
touch /sys/firmware/x
touch /proc/acpi/x
echo hacked > /proc/sys/kernel/hostname
echo hacked > /proc/keys && echo wrote-to-null
cat /proc/sys/kernel/hostname
grep -E ' /proc/(bus|fs|irq|sys|sysrq-trigger|keys|timer_list|acpi|kcore) | /sys/firmware ' \
  /proc/self/mountinfo | cut -d' ' -f4-
"""


def test_masked_and_readonly_paths(runc: Runtime, pyrun: Runtime, bundles: Bundles) -> None:
    pair = run_both(runc, pyrun, bundles.make(config=sh_config(_MASKED_AND_READONLY)))
    runc_out, pyrun_out = pair.out
    # Mount lines carry anonymous device numbers only in the part cut off above.
    assert pyrun_out == runc_out
    assert pair.err[1] == pair.err[0]
    assert "Read-only file system" in pair.pyrun.stderr
    assert "/sys/firmware directory" in pyrun_out


@pytest.mark.parametrize("readonly", [True, False], ids=["ro", "rw"])
def test_root_readonly(runc: Runtime, pyrun: Runtime, bundles: Bundles, readonly: bool) -> None:
    config = sh_config(
        "touch /x && echo created; rm -f /x;"
        " awk '$5 == \"/\"' /proc/self/mountinfo | cut -d' ' -f4-"
    )
    config["root"]["readonly"] = readonly
    pair = run_both(runc, pyrun, bundles.make(config=config, own_rootfs=True))
    assert pair.out[1] == pair.out[0]
    assert pair.err[1] == pair.err[0]
    assert ("created" in pair.pyrun.stdout) is (not readonly)
    root_options = pair.pyrun.stdout.splitlines()[-1].split(" ")[2]
    assert root_options.split(",")[0] == ("ro" if readonly else "rw")


def _host_dir(tmp_path: Path) -> Path:
    host = tmp_path / "hostdir"
    (host / "sub").mkdir(parents=True)
    (host / "file").write_text("from the host\n")
    return host


def test_bind_mounts(runc: Runtime, pyrun: Runtime, bundles: Bundles, tmp_path: Path) -> None:
    host = _host_dir(tmp_path)
    script = (
        "grep ' /m/' /proc/self/mountinfo | cut -d' ' -f4-;"
        " for d in a b c d; do touch /m/$d/new && echo wrote-$d; rm -f /m/$d/new; done;"
        " cat /m/f; echo x >> /m/f || echo file-ro;"
        " cp /bin/busybox /m/c/bb && /m/c/bb true || echo noexec; rm -f /m/c/bb"
    )
    config = sh_config(script)
    config["mounts"] += [
        {"destination": "/m/a", "type": "bind", "source": str(host), "options": ["rbind", "ro"]},
        {"destination": "/m/b", "type": "bind", "source": str(host), "options": ["bind", "rw"]},
        {
            "destination": "/m/c",
            "type": "none",
            "source": str(host),
            "options": ["bind", "nosuid", "nodev", "noexec"],
        },
        {
            "destination": "/m/d",
            "type": "bind",
            "source": str(host),
            "options": ["rbind", "ro", "rprivate"],
        },
        {
            "destination": "/m/f",
            "type": "bind",
            "source": str(host / "file"),
            "options": ["bind", "ro"],
        },
    ]
    bundle = bundles.make(config=config, own_rootfs=True)
    # Mount points made beforehand: both runtimes find the same rootfs.
    for name in "abcd":
        (bundle / "rootfs" / "m" / name).mkdir(parents=True)
    (bundle / "rootfs" / "m" / "f").touch()
    pair = run_both(runc, pyrun, bundle)
    assert pair.out[1] == pair.out[0], pair
    assert pair.err[1] == pair.err[0]
    out = pair.pyrun.stdout
    assert "wrote-b" in out and "wrote-c" in out and "wrote-a" not in out, out
    assert "from the host" in out and "file-ro" in out and "noexec" in out


def test_bind_type_without_bind_option(
    runc: Runtime, pyrun: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    """``"type": "bind"`` with no ``bind``/``rbind`` option: runc 1.1.5 passes "bind" to
    mount(2) as a filesystem type (ENODEV, "no such device"); pyrun takes the type to mean a
    bind mount (as runc does since 1.2 and crun always has). A documented difference."""
    host = _host_dir(tmp_path)
    config = sh_config("cat /m/file")
    config["mounts"].append(
        {"destination": "/m", "type": "bind", "source": str(host), "options": ["ro"]}
    )
    bundle = bundles.make(config=config, own_rootfs=True)
    (bundle / "rootfs" / "m").mkdir()
    pair = run_both(runc, pyrun, bundle, check=False)
    assert pair.codes == (1, 0), pair
    assert "no such device" in pair.runc.stderr
    assert pair.pyrun.stdout == "from the host\n"


@pytest.fixture
def shared_host_dir(tmp_path: Path) -> Iterator[Path]:
    """A host directory that is a shared mount (its own peer group), unmounted afterwards."""
    path = tmp_path / "shared"
    (path / "inner").mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.parametrize("propagation", [None, "rprivate", "rslave", "rshared", "private"])
def test_bind_mount_propagation(
    runc: Runtime,
    pyrun: Runtime,
    bundles: Bundles,
    shared_host_dir: Path,
    propagation: str | None,
) -> None:
    options = ["rbind"] + ([propagation] if propagation else [])
    config = sh_config("grep ' /mnt/p ' /proc/self/mountinfo | cut -d' ' -f4-")
    source = str(shared_host_dir)
    config["mounts"].append(
        {"destination": "/mnt/p", "type": "bind", "source": source, "options": options}
    )
    bundle = bundles.make(config=config, own_rootfs=True)
    (bundle / "rootfs" / "mnt" / "p").mkdir(parents=True)
    pair = run_both(runc, pyrun, bundle)
    runc_mounts, pyrun_mounts = _mountinfo_fields(pair)
    assert pyrun_mounts == runc_mounts
    assert len(runc_mounts) == 1, pair
    tags = runc_mounts[0][3:-4]  # root, point, options, [tags], -, fstype, source, super
    if propagation in ("rprivate", "private"):
        assert not tags
    elif propagation == "rshared":
        assert tags[0] == "shared" and tags[1].startswith("master:"), tags
    else:
        # The namespace's copy is a slave of the host's peer group (the root is rslave).
        assert len(tags) == 1 and tags[0].startswith("master:"), tags


def _mountinfo_fields(pair: Any) -> tuple[list[list[str]], list[list[str]]]:
    """Lines cut from field 4 on: shared:N of new peer groups normalised, master:N kept."""

    def split(text: str) -> list[list[str]]:
        rows = []
        for line in text.splitlines():
            rows.append(["shared" if f.startswith("shared:") else f for f in line.split(" ")])
        return rows

    return split(pair.out[0]), split(pair.out[1])


def test_tmpfs_mounts(runc: Runtime, pyrun: Runtime, bundles: Bundles) -> None:
    script = (
        "stat -c '%n %a %U:%G' /dev/scratch /tmp /run;"
        " grep -E ' /(dev/scratch|tmp|run) ' /proc/self/mountinfo | cut -d' ' -f4-;"
        " touch /run/x || echo run-ro; dd if=/dev/zero of=/dev/scratch/big bs=1k count=2048"
        " 2>/dev/null || echo scratch-full"
    )
    config = sh_config(script)
    config["mounts"] += [
        # A new directory (inside the fresh /dev tmpfs): mode= applies.
        {
            "destination": "/dev/scratch",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["mode=1777", "size=1m"],
        },
        # Existing directories: runc gives the tmpfs their mode (1777 and 755), not mode=.
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]},
        {
            "destination": "/run",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["ro", "nosuid", "nodev", "mode=700"],
        },
    ]
    pair = run_both(runc, pyrun, bundles.make(config=config))
    assert pair.out[1] == pair.out[0]
    assert pair.err[1] == pair.err[0]
    lines = pair.pyrun.stdout.splitlines()
    assert lines[:3] == ["/dev/scratch 1777 root:root", "/tmp 1777 root:root", "/run 755 root:root"]
    assert "run-ro" in pair.pyrun.stdout and "scratch-full" in pair.pyrun.stdout


def test_readonly_dev(runc: Runtime, pyrun: Runtime, bundles: Bundles) -> None:
    """A read-only /dev tmpfs: mounted read-write, filled, then made read-only per mount
    (the superblock stays rw) keeping nosuid."""
    config = sh_config(
        "grep ' /dev ' /proc/self/mountinfo | cut -d' ' -f4-; ls -lan /dev/null;"
        " echo x > /dev/null && echo null-ok; touch /dev/x || echo dev-ro"
    )
    for mount in config["mounts"]:
        if mount["destination"] == "/dev":
            mount["options"].append("ro")
    pair = run_both(runc, pyrun, bundles.make(config=config))
    runc_out, pyrun_out = (strip_ls_times(text) for text in pair.out)
    assert pyrun_out == runc_out
    assert pair.err[1] == pair.err[0]
    assert pyrun_out.startswith("/ /dev ro,nosuid - tmpfs tmpfs rw,")
    assert "null-ok" in pyrun_out and "dev-ro" in pyrun_out


@pytest.mark.parametrize(
    "propagation",
    ["private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"],
)
def test_rootfs_propagation(
    runc: Runtime,
    pyrun: Runtime,
    bundles: Bundles,
    shared_host_dir: Path,
    propagation: str,
) -> None:
    config = sh_config("cat /proc/self/mountinfo")
    config["linux"]["rootfsPropagation"] = propagation
    # A bind mount of a shared host directory shows whether the container is a slave.
    config["mounts"].append(
        {
            "destination": "/mnt/p",
            "type": "bind",
            "source": str(shared_host_dir),
            "options": ["rbind"],
        }
    )
    bundle = bundles.make(config=config, own_rootfs=True)
    (bundle / "rootfs" / "mnt" / "p").mkdir(parents=True)
    pair = run_both(runc, pyrun, bundle, check=False)
    if "unbindable" in propagation:
        # Both refuse: the rootfs cannot be bind-mounted onto itself under an unbindable /.
        assert pair.codes[0] != 0 and pair.codes[1] != 0, pair
        assert "invalid argument" in pair.runc.stderr
        assert "invalid argument" in pair.pyrun.stderr
        return
    assert pair.codes == (0, 0), pair
    runc_mounts, pyrun_mounts = _mountinfo(pair)
    if propagation in ("shared", "rshared"):
        # runc 1.1.5 never makes the container's / shared (opencontainers/runc#1755, fixed in
        # 1.3.0 and 1.2.7 by #4724): pyrun follows the runtime spec. runc's way there (a
        # non-recursive shared / before the rootfs is bound) also leaves the probe bind a peer
        # of the host's group, where pyrun's (rslave until after pivot_root) makes it a slave
        # of that group. The rest matches.
        runc_root = mounts_at(runc_mounts, "/")[0]
        pyrun_root = mounts_at(pyrun_mounts, "/")[0]
        assert "shared" not in runc_root.tags
        assert "shared" in pyrun_root.tags.split(" ")
        recursive = propagation == "rshared"
        for entry in pyrun_mounts:
            if entry.point in ("/proc", "/dev", "/sys"):
                assert ("shared" in entry.tags.split(" ")) is recursive, entry
        assert mounts_at(runc_mounts, "/mnt/p")[0].tags == "shared"
        assert "master:" in mounts_at(pyrun_mounts, "/mnt/p")[0].tags

        def comparable(entries: list[Any]) -> list[Any]:
            return [
                e._replace(tags=" ".join(t for t in e.tags.split(" ") if t != "shared"))
                for e in by_mount_point(entries)
                if e.point != "/mnt/p"
            ]

        assert comparable(pyrun_mounts) == comparable(runc_mounts)
        return
    assert by_mount_point(pyrun_mounts) == by_mount_point(runc_mounts)
    # The probe: a non-recursive change of / leaves the namespace's copy of the shared host
    # directory in the host's peer group, so its bind joins it; rslave makes it a slave and
    # rprivate cuts it off.
    expected = {"private": "shared", "slave": "shared", "rprivate": "", "rslave": "master:"}
    bind = mounts_at(pyrun_mounts, "/mnt/p")[0]
    assert bind.tags.startswith(expected[propagation]) and bool(bind.tags) is bool(
        expected[propagation]
    ), bind


# -- 5. /dev ------------------------------------------------------------------------------------


def test_dev_of_the_default_config(runc: Runtime, pyrun: Runtime, bundles: Bundles) -> None:
    config = sh_config("ls -lan /dev /dev/pts /dev/shm /dev/mqueue")
    pair = run_both(runc, pyrun, bundles.make(config=config))
    runc_out, pyrun_out = (strip_ls_times(text) for text in pair.out)
    assert pyrun_out == runc_out
    words = [" ".join(line.split()) for line in pyrun_out.splitlines()]
    for expected in (
        "crw-rw-rw- 1 0 0 1, 3 null",
        "lrwxrwxrwx 1 0 0 8 ptmx -> pts/ptmx",
        "lrwxrwxrwx 1 0 0 13 fd -> /proc/self/fd",
        "crw-rw-rw- 1 0 0 5, 2 ptmx",
    ):
        assert expected in words, pyrun_out


def test_dev_with_config_devices(runc: Runtime, pyrun: Runtime, bundles: Bundles) -> None:
    config = sh_config(
        "ls -lan /dev/mydev /dev/sub/myfifo; stat -c '%n %F %a %u:%g %t:%T' /dev/mydev"
        " /dev/sub/myfifo; cat /dev/mydev; echo ok > /dev/mydev && echo writable"
    )
    config["linux"]["devices"] = [
        {
            "path": "/dev/mydev",
            "type": "c",
            "major": 1,
            "minor": 3,
            "fileMode": 0o600,
            "uid": 1,
            "gid": 2,
        },
        {"path": "/dev/sub/myfifo", "type": "p", "fileMode": 0o640},
    ]
    pair = run_both(runc, pyrun, bundles.make(config=config))
    runc_out, pyrun_out = (strip_ls_times(text) for text in pair.out)
    assert pyrun_out == runc_out
    assert pair.err[1] == pair.err[0]
    assert "/dev/mydev character special file 600 1:2 1:3" in pyrun_out
    assert "/dev/sub/myfifo fifo 640 0:0 0:0" in pyrun_out
    assert "writable" in pyrun_out


# -- 6. process attributes ----------------------------------------------------------------------

_PROCESS = """
ulimit -a
cat /proc/self/limits
cat /proc/self/oom_score_adj
umask
pwd
env | sort
grep NoNewPrivs /proc/self/status
readlink /proc/1/exe
ps
cat /proc/self/cgroup
"""


def test_process_attributes(runc: Runtime, pyrun: Runtime, bundles: Bundles) -> None:
    config = sh_config(_PROCESS)
    process = config["process"]
    process["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 512},
        {"type": "RLIMIT_NPROC", "hard": 2000, "soft": 1000},
        {"type": "RLIMIT_CORE", "hard": 1048576, "soft": 4096},
    ]
    process["oomScoreAdj"] = 500
    process["user"]["umask"] = 0o027
    process["cwd"] = "/tmp"
    process["env"] += ["FOO=bar baz", "EMPTY="]
    pair = run_both(runc, pyrun, bundles.make(config=config))
    runc_out, pyrun_out = (normalise_ps(text) for text in pair.out)
    assert pyrun_out == runc_out
    for expected in (
        "open files                      (-n) 512",
        "Max processes             1000                 2000",
        "Max core file size        4096                 1048576",
        "\n500\n0027\n/tmp\n",
        "HOME=/root\n",
        "FOO=bar baz\n",
        "NoNewPrivs:\t1",
        "/bin/busybox\n",
        "    1 root     sh -c",
        "memory:/pyrun/<id>\n",
    ):
        assert expected in pyrun_out, expected


def test_process_defaults(runc: Runtime, pyrun: Runtime, bundles: Bundles) -> None:
    """No rlimits, umask, oomScoreAdj or noNewPrivileges in the config: what is inherited."""
    config = sh_config(
        "cat /proc/self/oom_score_adj; umask; grep -E 'NoNewPrivs|Seccomp:' /proc/self/status;"
        " grep 'open files' /proc/self/limits; env | sort"
    )
    process = config["process"]
    for key in ("rlimits", "noNewPrivileges"):
        process.pop(key, None)
    process["env"] = ["PATH=/bin"]
    pair = run_both(runc, pyrun, bundles.make(config=config))
    assert pair.out[1] == pair.out[0]
    assert "NoNewPrivs:\t0" in pair.pyrun.stdout


# -- 7. cgroup limits seen from the host --------------------------------------------------------

_LIMIT_FILES = [
    ("memory", "memory.limit_in_bytes"),
    ("memory", "memory.soft_limit_in_bytes"),
    ("memory", "memory.memsw.limit_in_bytes"),
    ("cpu", "cpu.shares"),
    ("cpu", "cpu.cfs_quota_us"),
    ("cpu", "cpu.cfs_period_us"),
    ("cpuset", "cpuset.cpus"),
    ("cpuset", "cpuset.mems"),
    ("pids", "pids.max"),
]

_EXTRA_DEVICE_RULES = [
    {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
    {"allow": True, "type": "b", "major": 7, "access": "r"},
    {"allow": True, "type": "c", "major": 4, "minor": 64, "access": "rwm"},
]


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError as err:
        return f"<{err.strerror}>"


def _cgroup_dirs(container_id: str) -> list[str]:
    import glob

    return sorted(glob.glob(f"/sys/fs/cgroup/*/pyrun/{container_id}"))


@pytest.mark.parametrize("extra_rules", [False, True], ids=["default-devices", "extra-allow"])
def test_cgroup_limits_from_the_host(
    runc: Runtime, pyrun: Runtime, bundles: Bundles, extra_rules: bool
) -> None:
    config = sh_config("sleep 100")
    config["process"]["args"] = ["sleep", "100"]
    resources = config["linux"].setdefault("resources", {})
    resources.update(
        {
            "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 77},
        }
    )
    if extra_rules:
        resources["devices"] = resources["devices"] + _EXTRA_DEVICE_RULES
    bundle = bundles.make(config=config)
    ids: dict[str, str] = {}
    try:
        for name, runtime in (("runc", runc), ("pyrun", pyrun)):
            ids[name] = runtime.id("limits")
            set_cgroups_path(bundle, ids[name])
            runtime.ok("run", "-d", "--bundle", str(bundle), ids[name])
        seen: dict[str, dict[str, Any]] = {}
        for name, container_id in ids.items():
            base = f"/sys/fs/cgroup/{{}}/pyrun/{container_id}"
            values: dict[str, Any] = {
                f"{ctrl}/{file}": _read(f"{base.format(ctrl)}/{file}")
                for ctrl, file in _LIMIT_FILES
            }
            # The kernel keeps v1 device exceptions in the order they were written: runc writes
            # its rules sorted, pyrun in config order. The list is a set either way.
            values["devices.list"] = sorted(
                _read(f"{base.format('devices')}/devices.list").splitlines()
            )
            seen[name] = values
        assert seen["pyrun"] == seen["runc"]
        assert seen["pyrun"]["memory/memory.limit_in_bytes"] == f"{64 << 20}\n"
        assert seen["pyrun"]["pids/pids.max"] == "77\n"
        assert ("c 10:229 rw" in seen["pyrun"]["devices.list"]) is extra_rules
        assert "c 136:* rwm" in seen["pyrun"]["devices.list"]
        assert _cgroup_dirs(ids["pyrun"]) and _cgroup_dirs(ids["runc"])
    finally:
        for name, runtime in (("runc", runc), ("pyrun", pyrun)):
            if name in ids:
                runtime("kill", ids[name], "KILL")
    for name, runtime in (("runc", runc), ("pyrun", pyrun)):
        assert wait_for_status(runtime, ids[name], "stopped")["status"] == "stopped"
        runtime.ok("delete", ids[name])
        assert _cgroup_dirs(ids[name]) == [], name


# -- 8. network namespace -----------------------------------------------------------------------


def test_network_namespace(runc: Runtime, pyrun: Runtime, bundles: Bundles) -> None:
    config = sh_config(
        "cat /sys/class/net/lo/operstate; ip link; cat /proc/net/dev; ls /sys/class/net"
    )
    pair = run_both(runc, pyrun, bundles.make(config=config))
    assert pair.out[1] == pair.out[0]
    assert "1: lo: <LOOPBACK,UP,LOWER_UP>" in pair.pyrun.stdout
    assert pair.pyrun.stdout.splitlines()[-1] == "lo"


# -- 9. sysctl ----------------------------------------------------------------------------------


def test_sysctl(runc: Runtime, pyrun: Runtime, bundles: Bundles) -> None:
    keys = ("net/ipv4/ip_forward", "kernel/shmmax")
    before = [_read(f"/proc/sys/{key}") for key in keys]
    config = sh_config("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax")
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456789"}
    pair = run_both(runc, pyrun, bundles.make(config=config))
    assert pair.out[1] == pair.out[0]
    assert pair.pyrun.stdout == "1\n123456789\n"
    assert [_read(f"/proc/sys/{key}") for key in keys] == before


# -- 10. --no-pivot -----------------------------------------------------------------------------


def test_no_pivot(runc: Runtime, pyrun: Runtime, bundles: Bundles) -> None:
    config = sh_config(
        "ls /; readlink /proc/1/root; stat -c '%i' / /..; echo ---; cat /proc/self/mountinfo"
    )
    pair = run_both(runc, pyrun, bundles.make(config=config), run_args=("--no-pivot",))
    runc_head, _, runc_table = pair.out[0].partition("---\n")
    pyrun_head, _, pyrun_table = pair.out[1].partition("---\n")
    assert pyrun_head == runc_head
    ids = list(pair.ids.values())
    runc_mounts = parse_mountinfo(runc_table, ids)
    pyrun_mounts = parse_mountinfo(pyrun_table, ids)
    assert by_mount_point(pyrun_mounts) == by_mount_point(runc_mounts)
    assert mounts_at(pyrun_mounts, "/")[0].root == str(bundles.rootfs)


# -- 11. state through the lifecycle --------------------------------------------------------------


def _lifecycle(runtime: Runtime, bundle: Path) -> list[dict[str, Any]]:
    container_id = runtime.id("life")
    set_cgroups_path(bundle, container_id)
    states = []
    runtime.ok("create", "--bundle", str(bundle), container_id)
    states.append(runtime.state(container_id))
    runtime.ok("start", container_id)
    states.append(runtime.state(container_id))
    runtime.ok("kill", container_id, "KILL")
    states.append(wait_for_status(runtime, container_id, "stopped"))
    runtime.ok("delete", container_id)
    gone = runtime("state", container_id)
    assert gone.returncode != 0 and "does not exist" in gone.stderr, gone
    return states


def test_state_through_create_start_kill(runc: Runtime, pyrun: Runtime, bundles: Bundles) -> None:
    bundle = bundles.make(config=sh_config("sleep 100"))
    runc_states = _lifecycle(runc, bundle)
    pyrun_states = _lifecycle(pyrun, bundle)
    assert [s["status"] for s in pyrun_states] == [s["status"] for s in runc_states]
    assert [s["status"] for s in pyrun_states] == ["created", "running", "stopped"]
    for runc_state, pyrun_state in zip(runc_states, pyrun_states, strict=True):
        assert list(pyrun_state) == list(runc_state)  # same keys, same order
        assert pyrun_state["bundle"] == runc_state["bundle"] == str(bundle)
        assert pyrun_state["rootfs"] == runc_state["rootfs"]
        assert pyrun_state["owner"] == runc_state["owner"]
        assert (pyrun_state["pid"] > 0) is (runc_state["pid"] > 0)
    assert pyrun_states[0]["pid"] == pyrun_states[1]["pid"] > 0
    assert pyrun_states[2]["pid"] == runc_states[2]["pid"] == 0


def _state_texts(runc: Runtime, pyrun: Runtime, bundles: Bundles) -> list[str]:
    """The raw `state` output of a created container, runc's then pyrun's, with the values
    that must differ (id, pid, ociVersion, created) replaced by X."""
    bundle = bundles.make(config=sh_config("sleep 100"))
    texts = []
    for runtime in (runc, pyrun):
        container_id = runtime.id("text")
        set_cgroups_path(bundle, container_id)
        runtime.ok("create", "--bundle", str(bundle), container_id)
        try:
            text = runtime.ok("state", container_id).stdout
        finally:
            runtime("delete", "--force", container_id)
        for key in ("id", "pid", "ociVersion", "created"):
            text, count = re.subn(rf'("{key}": )("[^"]*"|\d+)', r"\1X", text)
            assert count == 1, (key, text)
        texts.append(text)
    return texts


def test_state_output_format(runc: Runtime, pyrun: Runtime, bundles: Bundles) -> None:
    """Same keys, order and indentation, byte for byte, but for the final newline (below)."""
    runc_text, pyrun_text = _state_texts(runc, pyrun, bundles)
    assert pyrun_text.rstrip("\n") == runc_text.rstrip("\n")
    assert runc_text.startswith('{\n  "ociVersion": X,\n  "id": X,\n  "pid": X,\n')


def test_state_output_bytes(runc: Runtime, pyrun: Runtime, bundles: Bundles) -> None:
    runc_text, pyrun_text = _state_texts(runc, pyrun, bundles)
    assert pyrun_text == runc_text
