"""The lifecycle's pure parts: the status table, the state store, status derivation from
(fake) /proc data, the parent<->init channel, the CLI's id/bundle short form and ``list``'s
table. No root, no containers: state lives in tmp dirs, /proc is a tmp dir, pipes are os.pipe.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

import runtime.lifecycle.container as container_mod
from runtime.errors import (
    ContainerExists,
    ContainerInitError,
    ContainerNotFound,
    ContainerNotRunning,
    PyrunError,
    StateError,
)
from runtime.lifecycle import status as st
from runtime.lifecycle.channel import Channel, Failed, Pid, Proceed, Ready, channel_pair
from runtime.lifecycle.container import OCI_VERSION, Container, Context
from runtime.lifecycle.state import _table, list_output, list_states, state
from runtime.lifecycle.store import EXEC_FIFO, STATE_FILE, Store, validate_id, write_atomic
from runtime.linux import procfs

# -- the status table ------------------------------------------------------------------------

ALLOWED = "allowed"
CREATING, CREATED, RUNNING, PAUSED, STOPPED = (
    st.CREATING,
    st.CREATED,
    st.RUNNING,
    st.PAUSED,
    st.STOPPED,
)

# verb -> status -> "allowed" or (error class, runc's words)
TABLE: dict[str, dict[st.Status, Any]] = {
    "start": {
        CREATING: (StateError, "cannot start a container in the creating state"),
        CREATED: ALLOWED,
        RUNNING: (StateError, "cannot start an already running container"),
        PAUSED: (StateError, "cannot start a container in the paused state"),
        STOPPED: (StateError, "cannot start a container that has stopped"),
    },
    "kill": {
        CREATING: (ContainerNotRunning, "container not running"),
        CREATED: ALLOWED,
        RUNNING: ALLOWED,
        PAUSED: ALLOWED,
        STOPPED: (ContainerNotRunning, "container not running"),
    },
    "delete": {
        CREATING: (StateError, "cannot delete container c1 that is not stopped: creating"),
        CREATED: ALLOWED,
        RUNNING: (StateError, "cannot delete container c1 that is not stopped: running"),
        PAUSED: (StateError, "cannot delete container c1 that is not stopped: paused"),
        STOPPED: ALLOWED,
    },
    "pause": {
        CREATING: (ContainerNotRunning, "container not running"),
        CREATED: ALLOWED,
        RUNNING: ALLOWED,
        PAUSED: (ContainerNotRunning, "container not running"),
        STOPPED: (ContainerNotRunning, "container not running"),
    },
    "resume": {
        CREATING: (StateError, "container not paused"),
        CREATED: (StateError, "container not paused"),
        RUNNING: (StateError, "container not paused"),
        PAUSED: ALLOWED,
        STOPPED: (StateError, "container not paused"),
    },
    "exec": {
        CREATING: (StateError, "cannot exec in a creating container"),
        CREATED: ALLOWED,
        RUNNING: ALLOWED,
        # PAUSED: see test_exec_in_a_paused_container_uses_runcs_words
        STOPPED: (StateError, "cannot exec in a stopped container"),
    },
    "update": {
        CREATING: (StateError, "cannot update a container in the creating state"),
        CREATED: ALLOWED,
        RUNNING: ALLOWED,
        PAUSED: ALLOWED,
        # STOPPED: see test_update_of_a_stopped_container_uses_runcs_words
    },
    "ps": dict.fromkeys(st.ALL, ALLOWED),
    "state": dict.fromkeys(st.ALL, ALLOWED),
}
CASES = [(verb, status, outcome) for verb, row in TABLE.items() for status, outcome in row.items()]


@pytest.mark.parametrize(
    ("verb", "status", "outcome"), CASES, ids=[f"{v}-{s}" for v, s, _ in CASES]
)
def test_status_table(verb: str, status: st.Status, outcome: Any) -> None:
    if outcome == ALLOWED:
        assert st.require(verb, status, "c1") is None
        return
    error_class, words = outcome
    with pytest.raises(StateError) as caught:
        st.require(verb, status, "c1")
    assert type(caught.value) is error_class
    assert str(caught.value) == words
    assert caught.value.exit_code == 1


def test_status_table_covers_every_verb() -> None:
    assert set(st.ALLOWED) == set(TABLE)
    assert [s.name for s in st.ALL] == ["creating", "created", "running", "paused", "stopped"]
    assert str(st.RUNNING) == "running"
    assert repr(st.PAUSED) == "Status('paused')"


def test_exec_in_a_paused_container_uses_runcs_words() -> None:
    with pytest.raises(StateError) as caught:
        st.require("exec", PAUSED, "c1")
    assert str(caught.value) == (
        "cannot exec in a paused container (use --ignore-paused to override)"
    )


def test_update_of_a_stopped_container_uses_runcs_words() -> None:
    with pytest.raises(ContainerNotRunning) as caught:
        st.require("update", STOPPED, "c1")
    assert str(caught.value) == "container not running"


# -- the store -------------------------------------------------------------------------------


@pytest.mark.parametrize("good", ["a", "c1", "A-Z_0.9+x", "..a", "a..", "-", "x" * 1024])
def test_valid_ids(good: str) -> None:
    assert validate_id(good) is None


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "/a", "a b", "ä", "a\n", "a:b", "x" * 1025])
def test_invalid_ids(bad: str) -> None:
    with pytest.raises(PyrunError) as caught:
        validate_id(bad)
    assert str(caught.value) == f"invalid container id format: {bad!r}"


def umasked(mode: int) -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def test_store_make_and_exists(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "root"))
    path = store.make("c1")
    assert path == f"{tmp_path}/root/c1"
    assert stat.S_IMODE(os.stat(path).st_mode) == umasked(0o711)
    assert store.has_dir("c1") and not store.has_dir("c2")
    with pytest.raises(ContainerExists) as caught:
        store.make("c1")
    assert str(caught.value) == "container with given ID already exists"
    assert caught.value.container_id == "c1"
    with pytest.raises(PyrunError) as bad:
        store.make("../escape")
    assert str(bad.value) == "invalid container id format: '../escape'"
    assert sorted(os.listdir(tmp_path)) == ["root"]


def test_store_state_round_trip(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.make("c1")
    document = {"id": "c1", "pid": 42, "bundle": "/b", "annotations": {"k": "é"}}
    store.write_state("c1", document)
    assert store.read_state("c1") == document
    assert json.loads((tmp_path / "c1" / STATE_FILE).read_text()) == document
    store.write_config("c1", {"ociVersion": "1.2.0"})
    assert store.read_config("c1") == {"ociVersion": "1.2.0"}
    assert stat.S_IMODE(os.stat(tmp_path / "c1" / STATE_FILE).st_mode) == umasked(0o600)


def test_store_read_state_of_missing_container(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    with pytest.raises(ContainerNotFound) as caught:
        store.read_state("nope")
    assert str(caught.value) == "container nope does not exist"
    store.make("empty")  # a directory without state.json (a create that died early)
    with pytest.raises(ContainerNotFound):
        store.read_state("empty")
    (tmp_path / "file").write_text("")
    with pytest.raises(ContainerNotFound):
        store.read_state("file")
    with pytest.raises(PyrunError) as bad:
        store.read_state("a/b")
    assert str(bad.value) == "invalid container id format: 'a/b'"


def test_store_ids_lists_only_containers_with_state(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "root"))
    assert store.ids() == []
    for name in ("zeta", "alpha", "mid"):
        store.make(name)
        store.write_state(name, {"id": name})
    store.make("nostate")
    (tmp_path / "root" / "stray-file").write_text("")
    (tmp_path / "root" / "dirstate").mkdir()
    (tmp_path / "root" / "dirstate" / STATE_FILE).mkdir()
    assert store.ids() == ["alpha", "mid", "zeta"]


def test_store_remove_is_idempotent(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.make("c1")
    store.write_state("c1", {"id": "c1"})
    os.mkfifo(tmp_path / "c1" / EXEC_FIFO)
    (tmp_path / "c1" / "state.json.tmp99").write_text("half")
    store.remove("c1")
    assert not (tmp_path / "c1").exists()
    store.remove("c1")
    store.remove("never")
    assert os.listdir(tmp_path) == []


def test_write_atomic_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    write_atomic(str(target), b"one")
    write_atomic(str(target), b"two", mode=0o644)
    assert target.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["f.json"]
    assert stat.S_IMODE(os.stat(target).st_mode) == umasked(0o644)  # the new file's mode


def test_write_atomic_never_shows_a_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"
    write_atomic(str(target), b'{"old": true}')

    def failing_write(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", failing_write)
    with pytest.raises(OSError):
        write_atomic(str(target), b'{"new": true}')
    monkeypatch.undo()
    assert target.read_bytes() == b'{"old": true}'


def test_write_atomic_cleans_up_after_a_failed_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"

    def failing_write(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", failing_write)
    with pytest.raises(OSError):
        write_atomic(str(target), b"{}")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


# -- /proc parsing ---------------------------------------------------------------------------


def stat_line(pid: int, comm: str, state_char: str = "S", start: int = 1234) -> str:
    after = [state_char, "1", str(pid), str(pid), "0", "-1", "4194560"]
    after += ["0"] * 8 + ["20", "0", "1", "0", str(start)] + ["0"] * 32
    return f"{pid} ({comm}) " + " ".join(after) + "\n"


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    for pid, comm, state_char, start in [
        (10, "sh", "S", 500),
        (11, "my (weird) cmd", "R", 600),
        (12, "a) S 1 2 (b", "S", 700),
        (13, "zombie", "Z", 800),
        (14, "dead", "X", 900),
        (15, ")", "D", 1000),
        (16, "with\nnewline", "S", 1100),
    ]:
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "stat").write_text(stat_line(pid, comm, state_char, start))
    return root


@pytest.mark.parametrize(
    ("pid", "state_char", "start"),
    [(10, "S", 500), (11, "R", 600), (12, "S", 700), (15, "D", 1000), (16, "S", 1100)],
)
def test_stat_fields_survive_odd_command_names(
    proc: Path, pid: int, state_char: str, start: int
) -> None:
    fields = procfs.stat_fields(pid, str(proc))
    assert fields is not None
    assert (fields[0], fields[1], fields[19]) == (state_char, "1", str(start))
    assert len(fields) == 52
    assert procfs.start_time(pid, str(proc)) == start


def test_missing_process(proc: Path) -> None:
    assert procfs.stat_fields(99, str(proc)) is None
    assert procfs.start_time(99, str(proc)) is None
    assert procfs.is_alive(99, None, str(proc)) is False


@pytest.mark.parametrize(
    ("pid", "started", "alive"),
    [
        (10, None, True),
        (10, 500, True),
        (10, 501, False),  # the pid was reused by a later process
        (11, 600, True),
        (13, None, False),  # zombie
        (14, None, False),  # dead
        (0, None, False),
        (-1, None, False),
    ],
)
def test_is_alive(proc: Path, pid: int, started: int | None, alive: bool) -> None:
    assert procfs.is_alive(pid, started, str(proc)) is alive


def test_procfs_reads_this_process() -> None:
    fields = procfs.stat_fields(os.getpid())
    assert fields is not None and fields[0] in ("R", "S")
    started = procfs.start_time(os.getpid())
    assert isinstance(started, int) and started > 0
    assert procfs.is_alive(os.getpid(), started) is True
    assert procfs.is_alive(os.getpid(), started + 1) is False


# -- Container.status ------------------------------------------------------------------------


class FakeManager:
    def __init__(self, frozen: bool) -> None:
        self.frozen = frozen

    def is_frozen(self) -> bool:
        return self.frozen


@pytest.fixture
def use_proc(proc: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    def is_alive(pid: int, started: int | None) -> bool:
        return procfs.is_alive(pid, started, str(proc))

    monkeypatch.setattr(container_mod, "is_alive", is_alive)
    return proc


def make_container(tmp_path: Path, **fields: Any) -> Container:
    store = Store(str(tmp_path / "state"))
    store.make("c1")
    document = {"id": "c1", "bundle": "/b", "created": "2025-11-27T23:03:23.5Z", **fields}
    store.write_state("c1", document)
    return Container.load(store, "c1")


@pytest.mark.parametrize(
    ("fields", "fifo", "frozen", "expected"),
    [
        ({"pid": 0, "creatorPid": 10, "creatorStartTime": 500}, False, None, CREATING),
        ({"creatorPid": 10}, False, None, CREATING),
        ({"pid": 0, "creatorPid": 10, "creatorStartTime": 499}, False, None, STOPPED),
        ({"pid": 0, "creatorPid": 13}, False, None, STOPPED),
        ({"pid": 0}, False, None, STOPPED),
        ({"pid": 11, "pidStartTime": 600}, True, None, CREATED),
        ({"pid": 11, "pidStartTime": 600}, False, None, RUNNING),
        ({"pid": 11, "pidStartTime": 600}, False, False, RUNNING),
        ({"pid": 11, "pidStartTime": 600}, False, True, PAUSED),
        ({"pid": 11, "pidStartTime": 600}, True, True, PAUSED),  # a paused created one (runc)
        ({"pid": 11, "pidStartTime": 601}, True, None, STOPPED),  # pid reused
        ({"pid": 99, "pidStartTime": 600}, True, None, STOPPED),  # dead
        ({"pid": 13, "pidStartTime": 800}, False, None, STOPPED),  # zombie
        ({"pid": 11}, False, None, RUNNING),  # no start time recorded: trust the pid
    ],
)
def test_status_derivation(
    tmp_path: Path,
    use_proc: Path,
    fields: dict[str, Any],
    fifo: bool,
    frozen: bool | None,
    expected: st.Status,
) -> None:
    container = make_container(tmp_path, **fields)
    if fifo:
        os.mkfifo(f"{container.dir}/{EXEC_FIFO}")
    if frozen is not None:
        container._cgroup = FakeManager(frozen)  # type: ignore[assignment]
    assert container.status() is expected


def test_oci_state_document(tmp_path: Path, use_proc: Path) -> None:
    container = make_container(
        tmp_path, pid=11, pidStartTime=600, rootfs="/b/rootfs", annotations={"a": "b"}
    )
    assert container.oci_state() == {
        "ociVersion": OCI_VERSION,
        "id": "c1",
        "pid": 11,
        "status": "running",
        "bundle": "/b",
        "rootfs": "/b/rootfs",
        "created": "2025-11-27T23:03:23.5Z",
        "annotations": {"a": "b"},
        "owner": "",
    }
    assert list(container.oci_state()) == [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "annotations",
        "owner",
    ]


def test_oci_state_of_a_stopped_container_has_pid_0(tmp_path: Path, use_proc: Path) -> None:
    container = make_container(tmp_path, pid=99, pidStartTime=1, ociVersion="1.0.2", annotations={})
    document = container.oci_state()
    assert (document["pid"], document["status"], document["ociVersion"]) == (0, "stopped", "1.0.2")
    assert "annotations" not in document
    assert container.oci_state(st.CREATED)["pid"] == 99


def test_state_command_output(tmp_path: Path, use_proc: Path) -> None:
    make_container(tmp_path, pid=10, pidStartTime=500, rootfs="/r", owner="")
    ctx = Context(root=str(tmp_path / "state"))
    assert state(ctx, "c1") == (
        "{\n"
        f'  "ociVersion": "{OCI_VERSION}",\n'
        '  "id": "c1",\n'
        '  "pid": 10,\n'
        '  "status": "running",\n'
        '  "bundle": "/b",\n'
        '  "rootfs": "/r",\n'
        '  "created": "2025-11-27T23:03:23.5Z",\n'
        '  "owner": ""\n'
        "}"
    )
    with pytest.raises(ContainerNotFound) as caught:
        state(ctx, "c2")
    assert str(caught.value) == "container c2 does not exist"


# -- the channel -----------------------------------------------------------------------------


@pytest.fixture
def pair() -> Any:
    parent, child = channel_pair()
    yield parent, child
    parent.close()
    child.close()


@pytest.mark.parametrize(
    "message",
    [Pid(1), Pid(4194304), Ready(), Proceed(), Failed(""), Failed("mount proc: permission denied")],
    ids=lambda m: type(m).__name__,
)
def test_every_message_round_trips_both_ways(pair: Any, message: Any) -> None:
    parent, child = pair
    child.send(message)
    received = parent.receive()
    assert type(received) is type(message)
    for slot in type(message).__slots__:
        assert getattr(received, slot) == getattr(message, slot)
    parent.send(message)
    assert type(child.receive()) is type(message)


def test_wire_format(pair: Any) -> None:
    parent, child = pair
    child.send(Pid(1234))
    child.send(Ready())
    child.send(Failed("é"))
    assert (
        os.read(parent.read_fd, 100)
        == b"P\x00\x00\x00\x041234R\x00\x00\x00\x00F\x00\x00\x00\x02\xc3\xa9"
    )


def test_messages_arrive_in_order(pair: Any) -> None:
    parent, child = pair
    for message in (Pid(7), Failed("first"), Ready()):
        child.send(message)
    received = [parent.receive() for _ in range(3)]
    assert [type(m).__name__ for m in received] == ["Pid", "Failed", "Ready"]
    assert received[0].pid == 7  # type: ignore[union-attr]
    assert received[1].message == "first"  # type: ignore[union-attr]


def test_eof_is_none(pair: Any) -> None:
    parent, child = pair
    child.send(Ready())
    child.close()
    assert isinstance(parent.receive(), Ready)
    assert parent.receive() is None
    assert parent.receive() is None


def test_large_failure_message_crosses_the_pipe_buffer(pair: Any) -> None:
    parent, child = pair
    text = "x" * 300_000 + "ü"
    received: list[Any] = []
    reader = threading.Thread(target=lambda: received.append(parent.receive()))
    reader.start()
    child.send(Failed(text))
    reader.join(timeout=10)
    assert isinstance(received[0], Failed) and received[0].message == text


def test_failed_payload_that_is_not_utf8_is_replaced(pair: Any) -> None:
    parent, child = pair
    os.write(child.write_fd, b"F\x00\x00\x00\x03a\xffb")
    received = parent.receive()
    assert isinstance(received, Failed) and received.message == "a\ufffdb"


@pytest.mark.parametrize(
    "raw",
    [b"P", b"P\x00\x00", b"P\x00\x00\x00\x04", b"P\x00\x00\x00\x0412", b"F\x00\x00\x01\x00abc"],
)
def test_truncated_frame(raw: bytes) -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, raw)
    os.close(write_fd)
    channel = Channel(read_fd, -1)
    with pytest.raises(ContainerInitError) as caught:
        channel.receive()
    assert str(caught.value) == "protocol error: truncated message"
    channel.close()


def test_unknown_tag(pair: Any) -> None:
    parent, child = pair
    os.write(child.write_fd, b"X\x00\x00\x00\x00")
    with pytest.raises(ContainerInitError) as caught:
        parent.receive()
    assert str(caught.value) == "protocol error: unknown message b'X'"


def test_malformed_pid_payload_is_a_protocol_error(pair: Any) -> None:
    parent, child = pair
    os.write(child.write_fd, b"P\x00\x00\x00\x03abc")
    with pytest.raises(ContainerInitError):
        parent.receive()


def test_close_is_idempotent() -> None:
    parent, child = channel_pair()
    fds = [parent.read_fd, parent.write_fd, child.read_fd, child.write_fd]
    assert all(os.get_inheritable(fd) is False for fd in fds)
    parent.close()
    parent.close()
    child.close()
    assert (parent.read_fd, parent.write_fd, child.read_fd, child.write_fd) == (-1, -1, -1, -1)
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)


# -- the CLI's id/bundle rules ---------------------------------------------------------------


def test_id_and_bundle_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime.cli.edge import resolve_id_and_bundle

    work = tmp_path / "work"
    (work / "hello").mkdir(parents=True)
    (work / "hello" / "config.json").write_text("{}")
    (work / "ybundle").mkdir()
    (work / "ybundle" / "config.yaml").write_text("")
    (work / "plain").mkdir()
    monkeypatch.chdir(work)

    # --bundle given: the argument is always the id
    assert resolve_id_and_bundle("hello", "/b") == ("hello", "/b")
    # an argument that is no directory is an id; the bundle is the current directory
    assert resolve_id_and_bundle("c1", None) == ("c1", str(work))
    # a directory holding a config is the short form: id = its name
    assert resolve_id_and_bundle("hello", None) == ("hello", str(work / "hello"))
    assert resolve_id_and_bundle("ybundle", None) == ("ybundle", str(work / "ybundle"))
    assert resolve_id_and_bundle("./hello/", None) == ("hello", str(work / "hello"))
    assert resolve_id_and_bundle(str(work / "hello"), None) == ("hello", str(work / "hello"))
    # a directory without a config is just an id
    assert resolve_id_and_bundle("plain", None) == ("plain", str(work))

    # when the current directory is itself a bundle, a bare name is runc's id form...
    (work / "config.json").write_text("{}")
    assert resolve_id_and_bundle("hello", None) == ("hello", str(work))
    # ...but a path (with a slash) still names the bundle
    assert resolve_id_and_bundle("./hello", None) == ("hello", str(work / "hello"))
    assert resolve_id_and_bundle("hello/", None) == ("hello", str(work / "hello"))


# -- list ------------------------------------------------------------------------------------


def test_table_widths_like_runcs_tabwriter() -> None:
    rows = [
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        ["a", "1", "running", "/b", "t", "root"],
        ["a-much-longer-id", "123456", "stopped", "/x", "t", ""],
    ]
    assert _table(rows) == (
        f"{'ID':19}{'PID':12}{'STATUS':12}{'BUNDLE':12}{'CREATED':12}OWNER\n"
        f"{'a':19}{'1':12}{'running':12}{'/b':12}{'t':12}root\n"
        f"{'a-much-longer-id':19}{'123456':12}{'stopped':12}{'/x':12}{'t':12}\n"
    )
    # minimum width 12, else the longest cell plus 3 spaces; the last column is never padded
    assert _table([["x", "y"]]) == "x" + " " * 11 + "y\n"
    assert _table([["123456789", "y"]]) == "123456789   y\n"
    assert _table([["1234567890", "yyyyyyyyyyyyyyyyyyy"]]) == "1234567890   yyyyyyyyyyyyyyyyyyy\n"


@pytest.fixture
def listing(tmp_path: Path, use_proc: Path) -> Context:
    store = Store(str(tmp_path / "state"))
    for name, fields in [
        ("web", {"pid": 10, "pidStartTime": 500}),
        ("db", {"pid": 11, "pidStartTime": 600, "owner": "alice"}),
        ("old", {"pid": 99, "pidStartTime": 1}),
    ]:
        store.make(name)
        store.write_state(
            name,
            {
                "id": name,
                "bundle": f"/bundles/{name}",
                "created": "2025-11-27T23:03:23.123456789Z",
                **fields,
            },
        )
    store.make("half")  # no state.json yet: not listed
    store.make("corrupt")
    (tmp_path / "state" / "corrupt" / STATE_FILE).write_text('{"id": "corr')
    return Context(root=str(tmp_path / "state"))


def test_list_table(listing: Context) -> None:
    me = pwd.getpwuid(os.getuid()).pw_name
    created = "2025-11-27T23:03:23.123456789Z"
    width = len(created) + 3
    assert list_output(listing) == (
        f"{'ID':12}{'PID':12}{'STATUS':12}{'BUNDLE':15}{'CREATED':{width}}OWNER\n"
        f"{'db':12}{'11':12}{'running':12}{'/bundles/db':15}{created:{width}}alice\n"
        f"{'old':12}{'0':12}{'stopped':12}{'/bundles/old':15}{created:{width}}{me}\n"
        f"{'web':12}{'10':12}{'running':12}{'/bundles/web':15}{created:{width}}{me}\n"
    )


def test_list_quiet_and_json(listing: Context) -> None:
    assert list_output(listing, quiet=True) == "db\nold\nweb\n"
    documents = json.loads(list_output(listing, "json"))
    assert [(d["id"], d["pid"], d["status"]) for d in documents] == [
        ("db", 11, "running"),
        ("old", 0, "stopped"),
        ("web", 10, "running"),
    ]
    assert list_output(listing, "json").endswith("}]\n")
    assert [d["id"] for d in list_states(listing)] == ["db", "old", "web"]


def test_list_of_an_empty_root(tmp_path: Path) -> None:
    ctx = Context(root=str(tmp_path / "none"))
    assert list_output(ctx, "json") == "null\n"
    assert list_output(ctx, quiet=True) == ""
    assert list_output(ctx) == "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n"
