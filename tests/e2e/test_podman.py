"""podman (Debian's 4.3, with conmon) running containers through pyrun, with runc as the reference.

podman runs with everything of its own in a temp dir: storage root and runroot (a storage.conf
through ``CONTAINERS_STORAGE_CONF`` and ``--root/--runroot``), libpod's tmp dir, TMPDIR, the
image copy dir, the network config dir, the events log, and a ``containers.conf`` written here
(``CONTAINERS_CONF``): pyrun is the default runtime, listed in ``runtime_supports_json``,
``cgroup_manager = "cgroupfs"``, ``netns = "none"`` (no network here) and default ulimits this
machine accepts (podman's default nproc is more than it allows). Every container gets a cgroup
parent of this session (``--cgroup-parent``), so its cgroups, and conmon's, are ours alone.
The busybox image is built offline, loaded with ``podman load -i`` (an OCI-layout tarball),
then tagged ``localhost/pyrun-busybox:latest``.

Each test runs with ``--runtime <path>`` for runc (the reference) and for pyrun and asserts the
same observable results for both. The path is a wrapper named after the runtime (podman takes
the runtime's name from the path) that logs every command line conmon and podman sent
(``<tmp>/bin/<name>/<name>.argv.jsonl``). What pyrun does not support yet is marked
``xfail(strict=True)`` with the error podman printed.

podman does not pass ``--root`` to the runtime, so runtime state goes to the runtimes' default
roots (/run/pyrun, /run/runc), where each container's directory must be gone after ``rm``.
After each test: no container, runtime state, cgroup, new mount or process of the test may
remain. After the module: ``podman system reset``, then no mount, process or cgroup of ours.
podman load writes its blob-info cache to /var/lib/containers/cache whatever the storage root;
the module removes /var/lib/containers (and /run/containers, netavark's) only if podman created
them during the session.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    RUNTIME_BINARIES,
    LoggedRuntime,
    alive,
    cgroup_dirs,
    cgroup_procs,
    failed_as_expected,
    kill_pids,
    mounts_mentioning,
    processes_mentioning,
    reclaim_cgroups,
    remove_cgroup_tree,
    unmount_all,
    verb_of,
    wait_absent,
    wait_until,
)
from tests.e2e.images import Image

IMAGE = "localhost/pyrun-busybox:latest"
CONTAINER_ID = re.compile(r"^[0-9a-f]{64}$")
RUNTIME_STATE_ROOTS = {"pyrun": "/run/pyrun", "runc": "/run/runc"}  # their defaults
SHARED_DIRS = ("/var/lib/containers", "/run/containers")  # podman makes them, whatever we say

CONTAINERS_CONF = """\
[containers]
netns = "none"
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]

[engine]
runtime = "pyrun"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{base}/events.log"
runtime_supports_json = ["crun", "runc", "kata", "krun", "pyrun"]
tmp_dir = "{libpod_tmp}"
image_copy_tmp_dir = "{tmp}"

[engine.runtimes]
pyrun = ["{pyrun}"]
runc = ["{runc}"]

[network]
network_config_dir = "{base}/networks"
"""

STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{root}"
runroot = "{runroot}"
"""


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


class Podman:
    """podman with its storage, config and cgroup parent of this module."""

    def __init__(self, base_dir: Path) -> None:
        self.base = base_dir
        self.root = base_dir / "root"
        self.runroot = base_dir / "runroot"
        self.libpod_tmp = base_dir / "libpod-tmp"
        self.tmp = base_dir / "tmp"
        self.conf = base_dir / "containers.conf"
        self.storage_conf = base_dir / "storage.conf"
        self.cgroup_parent = f"/pyrun-e2e-{uuid.uuid4().hex[:8]}-podman"
        self.runtimes = {
            name: LoggedRuntime(name, base_dir / "bin" / name) for name in RUNTIME_BINARIES
        }
        for path in (self.libpod_tmp, self.tmp):
            path.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            CONTAINERS_CONF.format(
                base=base_dir,
                libpod_tmp=self.libpod_tmp,
                tmp=self.tmp,
                pyrun=self.runtimes["pyrun"].path,
                runc=self.runtimes["runc"].path,
            )
        )
        self.storage_conf.write_text(STORAGE_CONF.format(root=self.root, runroot=self.runroot))
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CONTAINER", "PODMAN"))},
            "CONTAINERS_CONF": str(self.conf),
            "CONTAINERS_STORAGE_CONF": str(self.storage_conf),
            "TMPDIR": str(self.tmp),
        }

    def __call__(
        self,
        *args: str,
        runtime: str | None = None,
        timeout: float = 60,
        tty: bool = False,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        argv = ["podman", "--root", str(self.root), "--runroot", str(self.runroot)]
        argv += ["--tmpdir", str(self.libpod_tmp)]
        argv += ["--runtime", runtime] if runtime else []
        argv += args
        if tty:
            argv = ["script", "-qec", shlex.join(argv), "/dev/null"]
        try:
            return subprocess.run(
                argv,
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self.env,
            )
        except subprocess.TimeoutExpired as exc:  # reported like a failed command: rc 124
            return subprocess.CompletedProcess(
                argv, 124, _text(exc.stdout), _text(exc.stderr) + f"[timed out after {timeout} s]"
            )

    def ok(self, *args: str, **kwargs: Any) -> str:
        result = self(*args, **kwargs)
        assert result.returncode == 0, result
        return result.stdout

    def container_ids(self) -> list[str]:
        return self.ok("ps", "-a", "-q", "--no-trunc").split()


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory, busybox_image: Image) -> Iterator[Podman]:
    for tool in ("podman", "conmon", "script"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `make setup`")
    existed = {path: os.path.exists(path) for path in SHARED_DIRS}
    engine = Podman(tmp_path_factory.mktemp("podman"))
    try:
        engine.ok("load", "-q", "-i", str(busybox_image.tarball), timeout=120)
        engine.ok("tag", "localhost/latest:latest", IMAGE)
        engine.ok("untag", "localhost/latest:latest", "localhost/latest:latest")
        yield engine
    finally:
        problems = []
        leftover = engine.container_ids() if engine.root.exists() else []
        if leftover:
            problems.append(f"containers left in podman: {leftover}")
            engine("rm", "-f", "-t", "0", *leftover)
        engine("system", "reset", "-f", timeout=120)
        processes = processes_mentioning(str(engine.base))
        if processes:
            problems.append(f"processes left (conmon?): {processes}")
            kill_pids(processes)
        mounts = unmount_all(str(engine.base))
        if mounts:
            problems.append(f"mounts left after podman system reset: {mounts}")
        # conmon's cgroup (<parent>/conmon) stays by podman's design; it must hold no process
        for path in cgroup_dirs(f"{engine.cgroup_parent}/conmon"):
            if cgroup_procs(path):
                problems.append(f"processes in {path}: {cgroup_procs(path)}")
        cgroups = [
            path
            for path in remove_cgroup_tree(engine.cgroup_parent)
            if not path.endswith("/conmon")
        ]
        if cgroups:
            problems.append(f"cgroups left: {cgroups}")
        if cgroup_dirs(engine.cgroup_parent):
            problems.append(f"cgroup parents not removable: {cgroup_dirs(engine.cgroup_parent)}")
        for path, was_there in existed.items():
            if not was_there:
                shutil.rmtree(path, ignore_errors=True)
        assert not problems, "\n".join(problems)


class Client:
    """One test's use of podman with one runtime binary (runc or pyrun)."""

    def __init__(self, engine: Podman, runtime_name: str) -> None:
        self.engine = engine
        self.runtime = engine.runtimes[runtime_name]
        self.state_root = Path(RUNTIME_STATE_ROOTS[runtime_name])
        self.prefix = f"{runtime_name[:2]}{uuid.uuid4().hex[:8]}"
        self.names: list[str] = []
        self.pids: list[int] = []
        self.mark = self.runtime.mark()
        self.mounts_before = set(mounts_mentioning(str(engine.base)))

    def name(self, name: str) -> str:
        value = f"{self.prefix}-{name}"
        self.names.append(value)
        return value

    def __call__(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.engine(*args, runtime=str(self.runtime.path), **kwargs)

    def run(self, name: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """``podman run --pull never --cgroup-parent P --name NAME args`` (flags, IMAGE, cmd)."""
        flags = ["--pull", "never", "--cgroup-parent", self.engine.cgroup_parent, "--name", name]
        return self("run", *flags, *args, **kwargs)

    def inspect(self, container: str, template: str) -> str:
        result = self("inspect", "--format", template, container)
        assert result.returncode == 0, self.explain(result)
        return result.stdout.strip()

    def cgroup(self, container_id: str, hierarchy: str) -> str:
        return f"/sys/fs/cgroup/{hierarchy}/{self.engine.cgroup_parent}/libpod-{container_id}"

    def explain(self, result: subprocess.CompletedProcess[str] | None = None) -> str:
        parts = []
        if result is not None:
            parts.append(
                f"podman: {shlex.join(result.args)}\nrc={result.returncode}\n"
                f"stdout={result.stdout!r}\nstderr={result.stderr!r}"
            )
        parts.append(f"{self.runtime.name} was sent:\n{self.runtime.transcript(self.mark)}")
        return "\n".join(parts)

    def start_sleeper(self, name: str) -> tuple[str, int]:
        result = self.run(self.name(name), "-d", IMAGE, "sleep", "1000")
        assert result.returncode == 0, self.explain(result)
        container_id = result.stdout.strip()
        assert CONTAINER_ID.match(container_id), self.explain(result)
        assert self.inspect(container_id, "{{.State.Status}}") == "running", self.explain()
        pid = int(self.inspect(container_id, "{{.State.Pid}}"))
        self.pids.append(pid)
        return container_id, pid

    def container_ids_sent(self) -> list[str]:
        """Every container id this test's runtime was given (the last word of each call)."""
        ids = {argv[-1] for argv in self.runtime.calls(self.mark) if argv}
        return sorted(i for i in ids if CONTAINER_ID.match(i))

    def cleanup(self) -> list[str]:
        engine = self.engine
        for name in self.names:
            engine("rm", "-f", "-t", "0", name)
        problems = []
        for container_id in self.container_ids_sent():
            if not wait_absent(processes_mentioning, container_id, timeout=10):
                pids = processes_mentioning(container_id)
                problems.append(f"processes left for {container_id}: {pids}")
                kill_pids(pids)
            relative = f"{engine.cgroup_parent}/libpod-{container_id}"
            left = reclaim_cgroups(relative)
            if left:
                problems.append(f"cgroups left: {left}")
            state = self.state_root / container_id
            if state.exists():
                problems.append(f"runtime state left: {state}")
                shutil.rmtree(state, ignore_errors=True)
        # the storage driver's own mount of its home (root/overlay) comes and goes with podman
        # processes; it is checked at the end of the module, after `podman system reset`
        home = str(engine.root / "overlay")
        new = set(mounts_mentioning(str(engine.base))) - self.mounts_before - {home}
        mounts = sorted(new)
        if mounts:
            problems.append(f"mounts left: {mounts}")
            for point in sorted(mounts, key=len, reverse=True):
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        living = [pid for pid in self.pids if alive(pid)]
        if living:
            problems.append(f"container processes left: {living}")
            kill_pids(living)
        return problems


def runtimes(pyrun_xfail: str | None = None) -> pytest.MarkDecorator:
    """Parametrize over runc (the reference) and pyrun; pyrun xfails (strictly) with a reason."""
    marks = [pytest.mark.xfail(strict=True, reason=f"pyrun: {pyrun_xfail}")] if pyrun_xfail else []
    return pytest.mark.parametrize("runtime_name", ["runc", pytest.param("pyrun", marks=marks)])


@pytest.fixture
def client(podman: Podman, runtime_name: str, request: pytest.FixtureRequest) -> Iterator[Client]:
    user = Client(podman, runtime_name)
    yield user
    called = bool(user.runtime.calls(user.mark))
    problems = user.cleanup()
    if not called:
        problems.append(f"{runtime_name} was never called: the test ran without it")
    report = "\n".join(problems) + "\n" + user.explain()
    if problems and failed_as_expected(request):
        print(f"left behind by the expected failure (cleaned up):\n{report}")
        return
    assert not problems, report


def _terminal_lines(text: str) -> list[str]:
    """Output that went through two terminals (the container's and script's).

    Line ends arrive as \\r\\r\\n, and script(1), whose stdin is /dev/null, echoes an EOF
    as ``^@`` (sometimes as a NUL) at the start."""
    text = text.replace("\r", "").replace("\0", "").replace("^@", "")
    return [line for line in text.split("\n") if line]


# -- tests -------------------------------------------------------------------------------------


def test_image_loaded(podman: Podman, busybox_image: Image) -> None:
    listing = podman.ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").splitlines()
    image_id = busybox_image.config.split(":", 1)[1][:12]
    assert listing == [f"{IMAGE} {image_id}"]


@runtimes()
def test_run_rm_echo(client: Client) -> None:
    name = client.name("echo")
    result = client.run(name, "--rm", IMAGE, "echo", "ok")
    assert result.returncode == 0, client.explain(result)
    assert result.stdout == "ok\n", client.explain(result)
    assert client.engine.ok("ps", "-a", "-q", "--filter", f"name={name}") == ""
    calls = client.runtime.calls(client.mark)
    verbs = [verb_of(argv) for argv in calls]
    assert verbs[:2] == ["create", "start"], client.explain()
    # conmon runs create with JSON logging: our containers.conf lists the runtime as supporting it
    assert "--log-format=json" in calls[0], client.explain()


def test_default_runtime_from_containers_conf(podman: Podman) -> None:
    """Without --runtime, containers.conf's `runtime = "pyrun"` picks pyrun (the wrapper)."""
    pyrun = podman.runtimes["pyrun"]
    mark = pyrun.mark()
    name = f"df{uuid.uuid4().hex[:8]}-default"
    flags = ["--pull", "never", "--cgroup-parent", podman.cgroup_parent, "--name", name, "--rm"]
    result = podman("run", *flags, IMAGE, "echo", "ok")
    assert result.returncode == 0, result
    assert result.stdout == "ok\n"
    assert pyrun.verbs(mark)[:2] == ["create", "start"], pyrun.transcript(mark)
    assert podman.ok("ps", "-a", "-q", "--filter", f"name={name}") == ""
    container_id = pyrun.calls(mark)[0][-1]
    assert CONTAINER_ID.match(container_id), pyrun.transcript(mark)
    assert not (Path(RUNTIME_STATE_ROOTS["pyrun"]) / container_id).exists()
    assert not cgroup_dirs(f"{podman.cgroup_parent}/libpod-{container_id}")


@runtimes()
def test_exit_code_passed_through(client: Client) -> None:
    result = client.run(client.name("exit"), "--rm", IMAGE, "sh", "-c", "echo out; exit 7")
    assert result.returncode == 7, client.explain(result)
    assert result.stdout == "out\n", client.explain(result)


@runtimes()
def test_run_detached_stop_rm(client: Client) -> None:
    engine = client.engine
    container_id, pid = client.start_sleeper("detached")
    assert alive(pid)
    assert cgroup_procs(client.cgroup(container_id, "pids")) == [pid]
    ps = engine.ok("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Status}}")
    assert f"{container_id} Up " in ps, ps

    started = time.monotonic()
    stop = client("stop", "-t", "1", container_id)  # sleep as pid 1 ignores TERM: KILL after 1 s
    assert stop.returncode == 0, client.explain(stop)
    assert stop.stdout.strip() == container_id, client.explain(stop)
    assert 1 <= time.monotonic() - started < 10
    assert client.inspect(container_id, "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
    assert wait_until(lambda: not alive(pid))
    ps = engine.ok("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Status}}")
    assert f"{container_id} Exited (137)" in ps, ps

    rm = client("rm", container_id)
    assert rm.returncode == 0, client.explain(rm)
    assert container_id not in engine.container_ids()
    assert not (client.state_root / container_id).exists()
    assert not cgroup_dirs(f"{engine.cgroup_parent}/libpod-{container_id}")
    kills = [argv[-2:] for argv in client.runtime.calls(client.mark) if verb_of(argv) == "kill"]
    assert kills == [[container_id, "15"], [container_id, "9"]], client.explain()


@runtimes()
def test_stop_with_term_handler(client: Client) -> None:
    script = "trap 'exit 42' TERM; sleep 1000 & wait"
    result = client.run(client.name("trap"), "-d", IMAGE, "sh", "-c", script)
    assert result.returncode == 0, client.explain(result)
    container_id = result.stdout.strip()
    client.pids.append(int(client.inspect(container_id, "{{.State.Pid}}")))
    started = time.monotonic()
    stop = client("stop", "-t", "30", container_id)
    assert stop.returncode == 0, client.explain(stop)
    assert time.monotonic() - started < 10  # TERM reached the trap: no wait for KILL
    assert client.inspect(container_id, "{{.State.Status}} {{.State.ExitCode}}") == "exited 42"
    assert client("rm", container_id).returncode == 0


@runtimes()
def test_exec(client: Client) -> None:
    container_id, pid = client.start_sleeper("exec")
    result = client("exec", container_id, "sh", "-c", "echo in; cat /proc/1/comm")
    assert result.returncode == 0, client.explain(result)
    assert result.stdout == "in\nsleep\n", client.explain(result)
    failing = client("exec", container_id, "sh", "-c", "exit 5")
    assert failing.returncode == 5, client.explain(failing)
    assert cgroup_procs(client.cgroup(container_id, "pids")) == [pid]
    assert client.inspect(container_id, "{{.State.Status}}") == "running"


@runtimes()
def test_exec_tty(client: Client) -> None:
    container_id, _ = client.start_sleeper("exectty")
    result = client("exec", "-t", container_id, "sh", "-c", "tty; exit 3", tty=True, timeout=15)
    assert result.returncode == 3, client.explain(result)
    assert _terminal_lines(result.stdout)[:1] == ["/dev/pts/0"], client.explain(result)


@runtimes()
def test_run_tty(client: Client) -> None:
    name = client.name("tty")
    result = client.run(
        name, "--rm", "-t", IMAGE, "sh", "-c", "tty; test -t 0 && echo stdin-tty; exit 6",
        tty=True, timeout=15,
    )  # fmt: skip
    assert result.returncode == 6, client.explain(result)
    assert _terminal_lines(result.stdout)[:2] == ["/dev/pts/0", "stdin-tty"], client.explain(result)


@runtimes()
def test_pause_unpause(client: Client) -> None:
    container_id, _ = client.start_sleeper("pause")
    freezer = Path(client.cgroup(container_id, "freezer")) / "freezer.state"
    pause = client("pause", container_id)
    assert pause.returncode == 0, client.explain(pause)
    assert client.inspect(container_id, "{{.State.Status}}") == "paused"
    assert freezer.read_text().strip() == "FROZEN"
    unpause = client("unpause", container_id)
    assert unpause.returncode == 0, client.explain(unpause)
    assert client.inspect(container_id, "{{.State.Status}}") == "running"
    assert freezer.read_text().strip() == "THAWED"
    assert client.runtime.verbs(client.mark)[-2:] == ["pause", "resume"], client.explain()


@runtimes()
def test_run_user_workdir_env(client: Client) -> None:
    script = "id -u; id -g; pwd; echo $FOO; grep ^CapEff /proc/self/status"
    flags = ["--rm", "--user", "1000:1000", "-w", "/tmp", "-e", "FOO=bar"]
    result = client.run(client.name("user"), *flags, IMAGE, "sh", "-c", script)
    assert result.returncode == 0, client.explain(result)
    expected = "1000\n1000\n/tmp\nbar\nCapEff:\t0000000000000000\n"
    assert result.stdout == expected, client.explain(result)


@runtimes()
def test_stdin_interactive(client: Client) -> None:
    result = client.run(
        client.name("stdin"), "--rm", "-i", IMAGE, "tr", "a-z", "A-Z", input="hello\n"
    )
    assert result.returncode == 0, client.explain(result)
    assert result.stdout == "HELLO\n", client.explain(result)


SECCOMP_PROBE = (
    "grep ^Seccomp: /proc/self/status; mkdir /tmp/d 2>&1 && echo mkdir-ok;"
    " linux32 true 2>/dev/null && echo linux32-ok || echo linux32-refused;"
    " linux64 true && echo linux64-ok"
)
# mkdir refused with EACCES; personality(PER_LINUX32) (linux32) refused with EINVAL by an argument
# comparison, personality(PER_LINUX) (linux64) allowed.
CUSTOM_PROFILE = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 22,
            "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}],
        },
    ],
}


@runtimes()
def test_seccomp_default_profile(client: Client) -> None:
    """podman's default profile (/usr/share/containers/seccomp.json) is in force (filter mode)
    and lets ordinary programs run (personality is allowed for these arguments)."""
    result = client.run(client.name("seccomp"), "--rm", IMAGE, "sh", "-c", SECCOMP_PROBE)
    assert result.returncode == 0, client.explain(result)
    expected = "Seccomp:\t2\nmkdir-ok\nlinux32-ok\nlinux64-ok\n"
    assert result.stdout == expected, client.explain(result)


@runtimes()
def test_seccomp_custom_profile(client: Client) -> None:
    profile = client.engine.base / "seccomp-custom.json"
    profile.write_text(json.dumps(CUSTOM_PROFILE))
    flags = ["--rm", "--security-opt", f"seccomp={profile}"]
    result = client.run(client.name("seccompc"), *flags, IMAGE, "sh", "-c", SECCOMP_PROBE)
    assert result.returncode == 0, client.explain(result)
    expected = (
        "Seccomp:\t2\nmkdir: can't create directory '/tmp/d': Permission denied\n"
        "linux32-refused\nlinux64-ok\n"
    )
    assert result.stdout == expected, client.explain(result)


@runtimes()
def test_seccomp_unconfined(client: Client) -> None:
    flags = ["--rm", "--security-opt", "seccomp=unconfined"]
    result = client.run(client.name("unconfined"), *flags, IMAGE, "sh", "-c", SECCOMP_PROBE)
    assert result.returncode == 0, client.explain(result)
    expected = "Seccomp:\t0\nmkdir-ok\nlinux32-ok\nlinux64-ok\n"
    assert result.stdout == expected, client.explain(result)


@runtimes()
def test_user_namespace(client: Client) -> None:
    flags = ["--rm", "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"]
    script = "cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c %u:%g /bin/busybox"
    result = client.run(client.name("userns"), *flags, IMAGE, "sh", "-c", script)
    assert result.returncode == 0, client.explain(result)
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert lines == ["0 100000 65536", "0 100000 65536", "0", "0:0"], client.explain(result)


@runtimes()
def test_resource_limits(client: Client) -> None:
    flags = ["-d", "--memory", "64m", "--pids-limit", "50", "--cpus", "0.5"]
    result = client.run(client.name("limits"), *flags, IMAGE, "sleep", "1000")
    assert result.returncode == 0, client.explain(result)
    container_id = result.stdout.strip()
    client.pids.append(int(client.inspect(container_id, "{{.State.Pid}}")))
    memory = Path(client.cgroup(container_id, "memory"))
    assert (memory / "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
    pids = Path(client.cgroup(container_id, "pids"))
    assert (pids / "pids.max").read_text().strip() == "50"
    cpu = Path(client.cgroup(container_id, "cpu"))
    quota = (cpu / "cpu.cfs_quota_us").read_text().strip()
    period = (cpu / "cpu.cfs_period_us").read_text().strip()
    assert (quota, period) == ("50000", "100000")


@runtimes()
def test_kill_with_signal(client: Client) -> None:
    script = "trap 'echo got-usr1; exit 9' USR1; sleep 1000 & wait"
    result = client.run(client.name("usr1"), "-d", IMAGE, "sh", "-c", script)
    assert result.returncode == 0, client.explain(result)
    container_id = result.stdout.strip()
    client.pids.append(int(client.inspect(container_id, "{{.State.Pid}}")))
    kill = client("kill", "-s", "USR1", container_id)
    assert kill.returncode == 0, client.explain(kill)
    wait = client("wait", container_id, timeout=20)
    assert wait.returncode == 0 and wait.stdout.strip() == "9", client.explain(wait)
    logs = client("logs", container_id)
    assert logs.stdout == "got-usr1\n", client.explain(logs)
    kills = [argv[-2:] for argv in client.runtime.calls(client.mark) if verb_of(argv) == "kill"]
    assert kills == [[container_id, "10"]], client.explain()
    assert client("rm", container_id).returncode == 0


@runtimes()
def test_create_start_restart(client: Client) -> None:
    """``podman create`` then ``start --attach``; a second start runs the same id again
    (the runtime gets create/start for an id it deleted before)."""
    name = client.name("restart")
    flags = ["--pull", "never", "--cgroup-parent", client.engine.cgroup_parent, "--name", name]
    created = client("create", *flags, IMAGE, "sh", "-c", "echo run; exit 3")
    assert created.returncode == 0, client.explain(created)
    container_id = created.stdout.strip()
    assert client.inspect(container_id, "{{.State.Status}}") == "created"
    for _ in range(2):
        started = client("start", "--attach", container_id)
        assert started.returncode == 3, client.explain(started)
        assert started.stdout == "run\n", client.explain(started)
        assert client.inspect(container_id, "{{.State.Status}} {{.State.ExitCode}}") == "exited 3"
    assert client.runtime.verbs(client.mark).count("create") == 2, client.explain()
    assert client("rm", container_id).returncode == 0


# podman turns the runtime's error words into exit codes: 127 for a command that is not found,
# 126 for one that cannot be run.
BAD_COMMANDS = [
    ("/nonexistent", 127, 'exec: "/nonexistent"', "no such file or directory"),
    ("/etc/passwd", 126, 'exec: "/etc/passwd"', "permission denied"),
    ("nosuchcmd", 127, 'exec: "nosuchcmd"', "executable file not found in $PATH"),
]


@runtimes()
def test_run_bad_command_exit_codes(client: Client) -> None:
    for number, (command, code, what, why) in enumerate(BAD_COMMANDS):
        result = client.run(client.name(f"bad{number}"), "--rm", IMAGE, command)
        assert result.returncode == code, client.explain(result)
        assert what in result.stderr and why in result.stderr, client.explain(result)
    assert all(not (client.state_root / cid).exists() for cid in client.container_ids_sent())


@runtimes()
def test_exec_bad_command_exit_codes(client: Client) -> None:
    container_id, pid = client.start_sleeper("execbad")
    for command, code, what, why in BAD_COMMANDS:
        result = client("exec", container_id, command)
        assert result.returncode == code, client.explain(result)
        assert what in result.stderr and why in result.stderr, client.explain(result)
    assert cgroup_procs(client.cgroup(container_id, "pids")) == [pid]
    assert client.inspect(container_id, "{{.State.Status}}") == "running"
