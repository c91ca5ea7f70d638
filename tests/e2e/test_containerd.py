"""containerd (Debian's 1.6) running containers through pyrun, with runc as the reference.

One containerd per module, in temp dirs: config, root, the gRPC/ttrpc sockets, ctr's FIFOs,
TMPDIR (the shim writes exec process files there), the runtime state roots (``ctr run
--runc-root``) and the state dir (bundles, a temp dir of mode 0711 of its own: a container's
remapped root must reach its bundle). The containerd namespace is unique per session, so the
containers' cgroups (containerd's cgroupsPath is ``/<namespace>/<id>``) live below
``/sys/fs/cgroup/*/<namespace>``. Only what containerd 1.6 hard-codes lands outside: the shims'
sockets in /run/containerd/s and, when ctr drops --runc-root (see DISPATCHER), runtime state in
/run/containerd/runc/<namespace>; both are checked per container and removed at the end
(/run/containerd too, if the module created it). The busybox image is built offline and
imported with ``ctr images import --base-name``.

Each test runs once with runc and once with pyrun as ``--runc-binary`` (the runc shim v2 calls
it the way it calls runc) and asserts the same observable results for both. The runtime binary
is a wrapper that logs every command line the shim sent (``<tmp>/bin/<name>/<name>.argv.jsonl``).
What pyrun does not support yet is marked ``xfail(strict=True)`` with the error the caller
printed, so each turns into a failure the moment pyrun learns it.

After each test: no task, container, runtime state dir, cgroup, rootfs mount, shim or container
process of the test may remain; after the module: no containerd, shim, mount or cgroup.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.conftest as base
from tests.e2e.conftest import (
    CONTAINERD_CONFIG,
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
    stop_daemon,
    unix_socket_paths,
    unmount_all,
    verb_of,
    wait_absent,
    wait_until,
)
from tests.e2e.images import Image

IMAGE_NAME = "localhost/pyrun-busybox"
IMAGE = f"{IMAGE_NAME}:latest"

# ctr drops the container's runc options (BinaryName, Root) whenever it sets task options of its
# own (--uidmap/--gidmap set IoUid/IoGid, --no-pivot sets NoPivotRoot): the shim then runs plain
# `runc` from its PATH with the default root /run/containerd/runc/<namespace>. containerd's PATH
# therefore starts with a `runc` that routes each call by the container id's prefix ("py" ->
# pyrun, anything else -> runc), through the logging wrappers: no call bypasses the runtime a
# test is about, and every call is logged.
DISPATCHER = """#!{python} -IS
import os, sys
target = {pyrun!r} if sys.argv[-1].startswith("py") else {runc!r}
os.execv(target, [target, *sys.argv[1:]])
"""
DEFAULT_SHIM_ROOT = "/run/containerd/runc"


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def _ctr_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CONTAINERD_")}


class Containerd:
    """A containerd daemon of this module, reached with ctr over its socket in the temp dir."""

    def __init__(self, base_dir: Path) -> None:
        self.base = base_dir
        self.namespace = f"pyrun-e2e-{uuid.uuid4().hex[:8]}"
        self.root = base_dir / "root"
        # The bundles (state) must be reachable by a container's remapped root (--uidmap):
        # pytest's temp dirs are 0700, so the state dir is a temp dir of its own, mode 0711.
        self.state = Path(tempfile.mkdtemp(prefix="pyrun-e2e-containerd-state-"))
        self.state.chmod(0o711)
        self.address = str(base_dir / "containerd.sock")
        self.fifo_dir = base_dir / "fifo"
        self.tmp = base_dir / "tmp"
        self.config = base_dir / "config.toml"
        self.logfile = base_dir / "containerd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ids: list[str] = []  # every container id the tests used
        self.runtimes = {
            name: LoggedRuntime(name, base_dir / "bin" / name) for name in RUNTIME_BINARIES
        }
        self.runtime_roots = {name: base_dir / "runtime-root" / name for name in RUNTIME_BINARIES}
        self.path_dir = base_dir / "path"
        self.path_dir.mkdir()
        dispatcher = self.path_dir / "runc"
        dispatcher.write_text(
            DISPATCHER.format(
                python=sys.executable,
                pyrun=str(self.runtimes["pyrun"].path),
                runc=str(self.runtimes["runc"].path),
            )
        )
        dispatcher.chmod(0o755)

    def start(self) -> None:
        for path in (self.root, self.state, self.fifo_dir, self.tmp, *self.runtime_roots.values()):
            path.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            CONTAINERD_CONFIG.format(
                root=self.root, state=self.state, address=self.address, opt=self.base / "opt"
            )
        )
        env = {**_ctr_env(), "TMPDIR": str(self.tmp)}
        env["PATH"] = f"{self.path_dir}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        with open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen(
                ["containerd", "--config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        proc = self.proc
        up = wait_until(
            lambda: (
                proc.poll() is not None
                or (os.path.exists(self.address) and self.ctr("version").returncode == 0)
            ),
            timeout=30,
            step=0.1,
        )
        if proc.poll() is not None or not up:
            self.stop()
            pytest.fail(f"containerd did not start:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])

    def ctr(
        self, *args: str, timeout: float = 30, tty: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """``ctr -a SOCK -n NS args``; with tty, under script(1), which gives ctr a terminal."""
        argv = ["ctr", "-a", self.address, "-n", self.namespace, *args]
        if tty:
            argv = ["script", "-qec", shlex.join(argv), "/dev/null"]
        try:
            return subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=_ctr_env(),
            )
        except subprocess.TimeoutExpired as exc:  # reported like a failed command: rc 124
            return subprocess.CompletedProcess(
                argv, 124, _text(exc.stdout), _text(exc.stderr) + f"[timed out after {timeout} s]"
            )

    def tasks(self) -> dict[str, tuple[int, str]]:
        """``ctr task ls``: id -> (pid, status)."""
        result = self.ctr("task", "ls")
        assert result.returncode == 0, result
        found = {}
        for line in result.stdout.splitlines()[1:]:
            task_id, pid, status = line.split()
            found[task_id] = (int(pid), status)
        return found

    def status(self, task_id: str) -> str:
        return self.tasks().get(task_id, (0, "<none>"))[1]

    def stopped(self, task_id: str) -> bool:
        return self.status(task_id) != "RUNNING"

    def containers(self) -> list[str]:
        result = self.ctr("containers", "ls", "-q")
        assert result.returncode == 0, result
        return result.stdout.split()

    def shims(self) -> list[int]:
        """Pids of the runc shims serving this containerd (their command line names its socket)."""
        return [
            pid
            for pid in processes_mentioning(f"-address {self.address}")
            if "containerd-shim" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
        ]

    def shim_socket(self, container_id: str) -> Path:
        """Where containerd 1.6 has a shim listen, whatever its state dir: /run/containerd/s/
        sha256(<grpc address>/<namespace>/<id>)."""
        key = f"{self.address}/{self.namespace}/{container_id}".encode()
        return Path("/run/containerd/s") / hashlib.sha256(key).hexdigest()

    def stop(self) -> None:
        if self.proc is not None:
            stop_daemon(self.proc)


@pytest.fixture(scope="module")
def containerd(
    tmp_path_factory: pytest.TempPathFactory, busybox_image: Image
) -> Iterator[Containerd]:
    for tool in ("containerd", "ctr", "containerd-shim-runc-v2", "script"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `make setup`")
    run_containerd_existed = os.path.exists("/run/containerd")
    daemon = Containerd(tmp_path_factory.mktemp("containerd"))
    try:
        daemon.start()
        imported = daemon.ctr(
            "images", "import", "--base-name", IMAGE_NAME, str(busybox_image.tarball), timeout=60
        )
        assert imported.returncode == 0, imported
        yield daemon
    finally:
        problems = []
        leftover = daemon.containers() if daemon.proc and daemon.proc.poll() is None else []
        for container_id in leftover:
            daemon.ctr("task", "kill", "--signal", "SIGKILL", container_id)
            daemon.ctr("task", "delete", "--force", container_id)
            daemon.ctr("containers", "rm", container_id)
        if leftover:
            problems.append(f"containers left in containerd: {leftover}")
        daemon.stop()
        shims = daemon.shims()
        if shims:
            problems.append(f"shims left: {shims}")
            kill_pids(shims)
        mounts = unmount_all(str(daemon.base)) + unmount_all(str(daemon.state))
        if mounts:
            problems.append(f"mounts left: {mounts}")
        shutil.rmtree(daemon.state, ignore_errors=True)
        cgroups = remove_cgroup_tree(daemon.namespace)
        if cgroups:
            problems.append(f"cgroups left: {cgroups}")
        if cgroup_dirs(daemon.namespace):
            problems.append(f"cgroup parents not removable: {cgroup_dirs(daemon.namespace)}")
        sockets = [
            daemon.shim_socket(cid) for cid in daemon.ids if daemon.shim_socket(cid).exists()
        ]
        if sockets:
            problems.append(f"shim sockets left: {sockets}")
            for socket in sockets:
                socket.unlink(missing_ok=True)
        default_root = Path(DEFAULT_SHIM_ROOT) / daemon.namespace
        if default_root.exists():
            left = os.listdir(default_root)
            if left:
                problems.append(f"runtime state left in {default_root}: {left}")
            shutil.rmtree(default_root, ignore_errors=True)
        if not run_containerd_existed:
            for path in (
                "/run/containerd/s",
                "/run/containerd/fifo",
                DEFAULT_SHIM_ROOT,
                "/run/containerd",
            ):
                try:
                    os.rmdir(path)
                except OSError:
                    pass
        assert not problems, "\n".join(problems)


class Client:
    """One test's use of containerd with one runtime binary (runc or pyrun)."""

    def __init__(self, daemon: Containerd, runtime_name: str) -> None:
        self.daemon = daemon
        self.runtime = daemon.runtimes[runtime_name]
        self.state_root = daemon.runtime_roots[runtime_name]
        self.prefix = f"{runtime_name[:2]}{uuid.uuid4().hex[:8]}"
        self.ids: list[str] = []
        self.pids: list[int] = []
        self.mark = self.runtime.mark()
        base.CURRENT_PREFIXES.append(self.prefix)  # the suite's cgroup leak check sees ours too

    def id(self, name: str) -> str:
        value = f"{self.prefix}-{name}"
        self.ids.append(value)
        self.daemon.ids.append(value)
        return value

    def cgroup(self, container_id: str, hierarchy: str) -> str:
        return f"/sys/fs/cgroup/{hierarchy}/{self.daemon.namespace}/{container_id}"

    def run(
        self,
        container_id: str,
        *args: str,
        detach: bool = False,
        rm: bool = False,
        tty: bool = False,
        timeout: float = 30,
        flags: tuple[str, ...] = (),
    ) -> subprocess.CompletedProcess[str]:
        """``ctr run [flags] IMAGE ID args`` with this runtime binary and root."""
        flags = (
            *flags,
            "--runc-binary",
            str(self.runtime.path),
            "--runc-root",
            str(self.state_root),
        )
        flags += ("--fifo-dir", str(self.daemon.fifo_dir))
        flags += ("-d",) if detach else ()
        flags += ("--rm",) if rm else ()
        flags += ("-t",) if tty else ()
        return self.daemon.ctr("run", *flags, IMAGE, container_id, *args, timeout=timeout, tty=tty)

    def ctr(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.daemon.ctr(*args, **kwargs)

    def exec(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """``ctr task exec --fifo-dir F args`` (args: flags, container id, command)."""
        return self.daemon.ctr(
            "task", "exec", "--fifo-dir", str(self.daemon.fifo_dir), *args, **kwargs
        )

    def explain(self, result: subprocess.CompletedProcess[str] | None = None) -> str:
        """For assertion messages: the ctr call, and what the shim sent to the runtime."""
        parts = []
        if result is not None:
            parts.append(
                f"ctr: {shlex.join(result.args)}\nrc={result.returncode}\n"
                f"stdout={result.stdout!r}\nstderr={result.stderr!r}"
            )
        parts.append(f"{self.runtime.name} was sent:\n{self.runtime.transcript(self.mark)}")
        return "\n".join(parts)

    def start_sleeper(self, name: str, flags: tuple[str, ...] = ()) -> tuple[str, int]:
        container_id = self.id(name)
        result = self.run(container_id, "sleep", "1000", detach=True, flags=flags)
        assert result.returncode == 0, self.explain(result)
        pid, status = self.daemon.tasks()[container_id]
        assert status == "RUNNING", self.explain()
        self.pids.append(pid)
        return container_id, pid

    def cleanup(self) -> list[str]:
        """Remove what the test made through containerd, then report whatever is left."""
        daemon = self.daemon
        problems = []
        for container_id in self.ids:
            marker = f"-namespace {daemon.namespace} -id {container_id} "
            if container_id in daemon.tasks():
                daemon.ctr("task", "kill", "--signal", "SIGKILL", container_id)
                wait_until(functools.partial(daemon.stopped, container_id), timeout=10)
                daemon.ctr("task", "delete", "--force", container_id)
            if container_id in daemon.containers():
                daemon.ctr("containers", "rm", container_id)
            if not wait_absent(processes_mentioning, marker, timeout=10):
                # a shim that never got what it waits for (e.g. a console's pty master)
                shims = processes_mentioning(marker)
                problems.append(f"shim left for {container_id}: {shims}")
                self.kill_shim(shims)
                daemon.ctr("task", "delete", "--force", container_id)
                daemon.ctr("containers", "rm", container_id)
        for container_id in self.ids:
            relative = f"{daemon.namespace}/{container_id}"
            left = reclaim_cgroups(relative)
            if left:
                problems.append(f"cgroups left: {left}")
            for root in (self.state_root, Path(DEFAULT_SHIM_ROOT)):
                state = root / daemon.namespace / container_id
                if state.exists():
                    problems.append(f"runtime state left: {state}")
                    shutil.rmtree(state, ignore_errors=True)
            mounts = unmount_all(f"/{relative}/")
            if mounts:
                problems.append(f"mounts left: {mounts}")
        for container_id in self.ids:
            socket = daemon.shim_socket(container_id)
            if not wait_until(functools.partial(_gone, socket), timeout=5):
                problems.append(f"shim socket left: {socket}")
                socket.unlink(missing_ok=True)
        living = [pid for pid in self.pids if alive(pid)]
        if living:
            problems.append(f"container processes left: {living}")
            kill_pids(living)
        return problems

    def kill_shim(self, pids: list[int]) -> None:
        """SIGKILL a stuck shim and remove the sockets it leaves in /run/containerd/s."""
        sockets = [path for pid in pids for path in unix_socket_paths(pid)]
        kill_pids(pids)
        wait_until(lambda: not any(alive(pid) for pid in pids), timeout=5)
        for path in sockets:
            if path.startswith("/run/containerd/s/"):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass


def _gone(path: Path) -> bool:
    return not path.exists()


def runtimes(pyrun_xfail: str | None = None) -> pytest.MarkDecorator:
    """Parametrize over runc (the reference) and pyrun; pyrun xfails (strictly) with a reason."""
    marks = [pytest.mark.xfail(strict=True, reason=f"pyrun: {pyrun_xfail}")] if pyrun_xfail else []
    return pytest.mark.parametrize("runtime_name", ["runc", pytest.param("pyrun", marks=marks)])


@pytest.fixture
def client(
    containerd: Containerd, runtime_name: str, request: pytest.FixtureRequest
) -> Iterator[Client]:
    user = Client(containerd, runtime_name)
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


def _ps_pids(result: subprocess.CompletedProcess[str]) -> list[int]:
    """``ctr task ps``: a PID/INFO table."""
    return sorted(int(line.split()[0]) for line in result.stdout.splitlines()[1:] if line.strip())


def _terminal_lines(text: str) -> list[str]:
    """Output that went through two terminals (the container's and script's).

    Line ends arrive as \\r\\r\\n, and script(1), whose stdin is /dev/null, echoes an EOF
    as ``^@`` (sometimes as a NUL) at the start."""
    text = text.replace("\r", "").replace("\0", "").replace("^@", "")
    return [line for line in text.split("\n") if line]


# -- tests -------------------------------------------------------------------------------------


def test_image_imported(containerd: Containerd, busybox_image: Image) -> None:
    result = containerd.ctr("images", "ls")
    assert result.returncode == 0, result
    (line,) = [line for line in result.stdout.splitlines() if line.startswith(IMAGE + " ")]
    assert busybox_image.manifest in line
    assert "linux/amd64" in line


@runtimes()
def test_run_attached_output_and_exit_code(client: Client) -> None:
    container_id = client.id("attached")
    result = client.run(container_id, "sh", "-c", "echo hi; echo oops >&2; exit 3", rm=True)
    assert result.returncode == 3, client.explain(result)
    assert result.stdout == "hi\n", client.explain(result)
    assert "oops" in result.stderr, client.explain(result)
    assert container_id not in client.daemon.containers()
    assert container_id not in client.daemon.tasks()
    verbs = client.runtime.verbs(client.mark)
    assert verbs[:2] == ["create", "start"] and "delete" in verbs, client.explain()


@runtimes()
def test_run_detached_ps_kill_delete(client: Client) -> None:
    daemon = client.daemon
    container_id = client.id("detached")
    script = "trap 'exit 42' TERM; sleep 1000 & wait"
    result = client.run(container_id, "sh", "-c", script, detach=True)
    assert result.returncode == 0, client.explain(result)

    pid, status = daemon.tasks()[container_id]
    assert status == "RUNNING", client.explain()
    client.pids.append(pid)
    assert alive(pid)
    assert daemon.shim_socket(container_id).is_socket()
    procs = client.cgroup(container_id, "pids")
    # sh (the container's init) and its sleep; nothing of the runtime stays in the cgroup
    assert wait_until(lambda: len(cgroup_procs(procs)) == 2), cgroup_procs(procs)
    ps = client.ctr("task", "ps", container_id)
    assert ps.returncode == 0, client.explain(ps)
    pids = _ps_pids(ps)
    client.pids += pids
    assert pid in pids and pids == cgroup_procs(procs), client.explain(ps)

    kill = client.ctr("task", "kill", container_id)  # SIGTERM: the trap exits 42
    assert kill.returncode == 0, client.explain(kill)
    assert wait_until(lambda: daemon.status(container_id) == "STOPPED"), client.explain()
    assert wait_until(lambda: not any(alive(p) for p in pids)), pids

    delete = client.ctr("task", "delete", container_id)
    assert delete.returncode == 0, client.explain(delete)
    assert "exit code 42" in delete.stderr, client.explain(delete)
    assert container_id not in daemon.tasks()
    assert not (client.state_root / daemon.namespace / container_id).exists()
    assert not cgroup_dirs(f"{daemon.namespace}/{container_id}")
    assert not mounts_mentioning(f"/{daemon.namespace}/{container_id}/")

    rm = client.ctr("containers", "rm", container_id)
    assert rm.returncode == 0, client.explain(rm)
    assert container_id not in daemon.containers()
    assert client.runtime.verbs(client.mark) == [
        "create",
        "start",
        "ps",
        "kill",
        "delete",
        "delete",
    ], client.explain()


@runtimes()
def test_kill_term_ignored_then_sigkill(client: Client) -> None:
    daemon = client.daemon
    container_id, pid = client.start_sleeper("kill")
    term = client.ctr("task", "kill", container_id)
    assert term.returncode == 0, client.explain(term)
    time.sleep(0.5)  # a namespace's pid 1 without a handler ignores SIGTERM
    assert daemon.status(container_id) == "RUNNING" and alive(pid), client.explain()

    kill = client.ctr("task", "kill", "--signal", "SIGKILL", container_id)
    assert kill.returncode == 0, client.explain(kill)
    assert wait_until(lambda: daemon.status(container_id) == "STOPPED"), client.explain()
    assert wait_until(lambda: not alive(pid))
    delete = client.ctr("task", "delete", container_id)
    assert delete.returncode == 0 and "exit code 137" in delete.stderr, client.explain(delete)
    assert client.ctr("containers", "rm", container_id).returncode == 0


@runtimes()
def test_kill_all(client: Client) -> None:
    daemon = client.daemon
    container_id = client.id("killall")
    result = client.run(container_id, "sh", "-c", "sleep 1000 & sleep 1001 & wait", detach=True)
    assert result.returncode == 0, client.explain(result)
    procs = client.cgroup(container_id, "pids")
    assert wait_until(lambda: len(cgroup_procs(procs)) == 3), cgroup_procs(procs)
    pids = cgroup_procs(procs)
    client.pids += pids

    kill = client.ctr("task", "kill", "--all", "--signal", "SIGKILL", container_id)
    assert kill.returncode == 0, client.explain(kill)
    assert wait_until(lambda: daemon.status(container_id) == "STOPPED"), client.explain()
    assert wait_until(lambda: not any(alive(p) for p in pids)), pids
    delete = client.ctr("task", "delete", container_id)
    assert delete.returncode == 0 and "exit code 137" in delete.stderr, client.explain(delete)
    assert client.ctr("containers", "rm", container_id).returncode == 0
    kills = [argv for argv in client.runtime.calls(client.mark) if verb_of(argv) == "kill"]
    assert kills and "--all" in kills[-1], client.explain()


@runtimes()
def test_exec(client: Client) -> None:
    container_id, pid = client.start_sleeper("exec")
    result = client.exec(
        "--exec-id", "x1", container_id,
        "sh", "-c", "echo in; cat /proc/1/comm; exit 4",
    )  # fmt: skip
    assert result.returncode == 4, client.explain(result)
    assert result.stdout == "in\nsleep\n", client.explain(result)
    # the exec'd process is gone; the container runs on
    assert _ps_pids(client.ctr("task", "ps", container_id)) == [pid]
    assert client.daemon.status(container_id) == "RUNNING"


@runtimes()
def test_exec_tty(client: Client) -> None:
    container_id, _ = client.start_sleeper("exectty")
    result = client.exec(
        "-t", "--exec-id", "t1", container_id,
        "sh", "-c", "tty; echo in; exit 5",
        tty=True, timeout=10,
    )  # fmt: skip
    lines = _terminal_lines(result.stdout)
    assert result.returncode == 5, client.explain(result)
    assert lines[:2] == ["/dev/pts/0", "in"], client.explain(result)


@runtimes()
def test_run_tty(client: Client) -> None:
    container_id = client.id("runtty")
    result = client.run(
        container_id,
        "sh",
        "-c",
        "tty; test -t 0 && echo stdin-tty; exit 6",
        rm=True,
        tty=True,
        timeout=10,
    )
    assert result.returncode == 6, client.explain(result)
    assert _terminal_lines(result.stdout)[:2] == ["/dev/pts/0", "stdin-tty"], client.explain(result)
    assert container_id not in client.daemon.containers()


@runtimes()
def test_pause_resume(client: Client) -> None:
    daemon = client.daemon
    container_id, _ = client.start_sleeper("pause")
    freezer = Path(client.cgroup(container_id, "freezer")) / "freezer.state"

    pause = client.ctr("task", "pause", container_id)
    assert pause.returncode == 0, client.explain(pause)
    assert daemon.status(container_id) == "PAUSED", client.explain()
    assert freezer.read_text().strip() == "FROZEN"

    resume = client.ctr("task", "resume", container_id)
    assert resume.returncode == 0, client.explain(resume)
    assert daemon.status(container_id) == "RUNNING", client.explain()
    assert freezer.read_text().strip() == "THAWED"
    assert client.runtime.verbs(client.mark)[-2:] == ["pause", "resume"], client.explain()


@runtimes()
def test_exec_detached_then_killed(client: Client) -> None:
    """``exec --detach`` without a terminal, its pid file, and ``ctr task kill --exec-id``."""
    container_id, pid = client.start_sleeper("execbg")
    result = client.exec("-d", "--exec-id", "bg", container_id, "sleep", "500")
    assert result.returncode == 0, client.explain(result)
    procs = client.cgroup(container_id, "pids")
    assert wait_until(lambda: len(cgroup_procs(procs)) == 2), client.explain()
    (exec_pid,) = set(cgroup_procs(procs)) - {pid}
    client.pids.append(exec_pid)
    assert _ps_pids(client.ctr("task", "ps", container_id)) == sorted([pid, exec_pid])
    exec_calls = [argv for argv in client.runtime.calls(client.mark) if verb_of(argv) == "exec"]
    assert exec_calls and "--detach" in exec_calls[-1] and "--pid-file" in exec_calls[-1]

    kill = client.ctr("task", "kill", "--exec-id", "bg", "--signal", "SIGKILL", container_id)
    assert kill.returncode == 0, client.explain(kill)
    assert wait_until(lambda: cgroup_procs(procs) == [pid]), client.explain()
    assert client.daemon.status(container_id) == "RUNNING"


@runtimes()
def test_exec_user_and_cwd(client: Client) -> None:
    container_id, _ = client.start_sleeper("execuser")
    result = client.exec(
        "--user", "1000", "--cwd", "/tmp", "--exec-id", "u1", container_id,
        "sh", "-c", "id -u; pwd; grep ^CapEff /proc/self/status",
    )  # fmt: skip
    assert result.returncode == 0, client.explain(result)
    assert result.stdout == "1000\n/tmp\nCapEff:\t0000000000000000\n", client.explain(result)


@runtimes()
def test_resource_limits(client: Client) -> None:
    """ctr's --memory-limit and --cpus reach the container's cgroup (v1 files on this host)."""
    flags = ("--memory-limit", str(64 << 20), "--cpus", "0.5")
    container_id, _ = client.start_sleeper("limits", flags=flags)
    memory = Path(client.cgroup(container_id, "memory"))
    cpu = Path(client.cgroup(container_id, "cpu"))
    assert (memory / "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
    quota = (cpu / "cpu.cfs_quota_us").read_text().strip()
    period = (cpu / "cpu.cfs_period_us").read_text().strip()
    assert (quota, period) == ("50000", "100000")


@runtimes()
def test_seccomp_default_profile(client: Client) -> None:
    """containerd's default profile (``--seccomp``): filter mode, unshare refused without
    CAP_SYS_ADMIN."""
    script = "grep ^Seccomp: /proc/self/status; unshare -U true && echo allowed || echo refused"
    result = client.run(client.id("seccomp"), "sh", "-c", script, rm=True, flags=("--seccomp",))
    assert result.returncode == 0, client.explain(result)
    assert result.stdout == "Seccomp:\t2\nrefused\n", client.explain(result)


@runtimes()
def test_without_seccomp(client: Client) -> None:
    script = "grep ^Seccomp: /proc/self/status; unshare -U true && echo allowed || echo refused"
    result = client.run(client.id("noseccomp"), "sh", "-c", script, rm=True)
    assert result.returncode == 0, client.explain(result)
    assert result.stdout == "Seccomp:\t0\nallowed\n", client.explain(result)


@runtimes()
def test_user_namespace(client: Client) -> None:
    """``--uidmap/--gidmap``: ctr remaps a copy of the snapshot; root inside is 100000 outside.

    ctr drops --runc-binary/--runc-root here (see DISPATCHER): the shim calls `runc` from PATH
    with the default root, which the dispatcher routes to the runtime under test."""
    flags = ("--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536")
    script = "cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c %u:%g /bin/busybox"
    result = client.run(client.id("userns"), "sh", "-c", script, rm=True, flags=flags)
    assert result.returncode == 0, client.explain(result)
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert lines == ["0 100000 65536", "0 100000 65536", "0", "0:0"], client.explain(result)
    calls = client.runtime.calls(client.mark)
    assert calls[0][:2] == ["--root", f"{DEFAULT_SHIM_ROOT}/{client.daemon.namespace}"]


BAD_COMMANDS = [
    ("/nonexistent", 'exec: "/nonexistent"', "no such file or directory"),
    ("/etc/passwd", 'exec: "/etc/passwd"', "permission denied"),
    ("nosuchcmd", 'exec: "nosuchcmd"', "executable file not found in $PATH"),
]


@runtimes()
def test_run_bad_command_reports_runtime_error(client: Client) -> None:
    """The shim reads the runtime's error from log.json; ctr prints it and exits 1."""
    for number, (command, what, why) in enumerate(BAD_COMMANDS):
        container_id = client.id(f"bad{number}")
        result = client.run(container_id, command, rm=True)
        assert result.returncode == 1, client.explain(result)
        assert "OCI runtime create failed" in result.stderr, client.explain(result)
        assert what in result.stderr and why in result.stderr, client.explain(result)
        assert container_id not in client.daemon.containers()
        assert not (client.state_root / client.daemon.namespace / container_id).exists()


@runtimes()
def test_exec_bad_command_reports_runtime_error(client: Client) -> None:
    container_id, pid = client.start_sleeper("execbad")
    for number, (command, what, why) in enumerate(BAD_COMMANDS):
        result = client.exec("--exec-id", f"bad{number}", container_id, command)
        assert result.returncode == 1, client.explain(result)
        assert "OCI runtime exec failed" in result.stderr, client.explain(result)
        assert what in result.stderr and why in result.stderr, client.explain(result)
    assert cgroup_procs(client.cgroup(container_id, "pids")) == [pid]
    assert client.daemon.status(container_id) == "RUNNING"
