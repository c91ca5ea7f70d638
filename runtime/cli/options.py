"""The command line, declared once as data (runc's flags and words).

Two parsers read this table: ``lean`` (the hot verbs, no click import) and ``full`` (click, for
everything, help included). Declaring flags here once is what keeps them from drifting apart;
tests/unit/test_cli_parsers.py checks that they agree.
"""

from __future__ import annotations


class Opt:
    __slots__ = ("choices", "default", "dest", "help", "kind", "names", "repeat")

    def __init__(
        self,
        names: tuple[str, ...],
        dest: str,
        kind: str = "flag",
        default: object = None,
        choices: tuple[str, ...] = (),
        help: str = "",
        repeat: bool = False,
    ) -> None:
        self.names = names  # long name first
        self.dest = dest
        self.kind = kind  # "flag", "str", "int", "choice"
        self.default = False if kind == "flag" and default is None else default
        self.choices = choices
        self.help = help
        self.repeat = repeat

    @property
    def takes_value(self) -> bool:
        return self.kind != "flag"


class Arg:
    __slots__ = ("dest", "help", "required", "variadic")

    def __init__(
        self, dest: str, required: bool = True, variadic: bool = False, help: str = ""
    ) -> None:
        self.dest = dest
        self.required = required
        self.variadic = variadic
        self.help = help


class Cmd:
    __slots__ = ("args", "help", "interspersed", "name", "options", "usage")

    def __init__(
        self,
        name: str,
        help: str,
        options: list[Opt],
        args: list[Arg],
        usage: str = "",
        interspersed: bool = True,
    ) -> None:
        self.name = name
        self.help = help
        self.options = options
        self.args = args
        self.usage = usage
        # False: options end at the first argument (exec ID COMMAND -c ... keeps the -c).
        self.interspersed = interspersed


GLOBAL_OPTIONS = [
    Opt(
        ("--root",),
        "root",
        "str",
        help="directory for container state (default: /run/pyrun; $XDG_RUNTIME_DIR/pyrun when"
        " not run as root)",
    ),
    Opt(("--log",), "log", "str", help="log file (default: stderr only)"),
    Opt(
        ("--log-format",),
        "log_format",
        "choice",
        "text",
        ("text", "json"),
        help="log format: text or json (one object per line)",
    ),
    Opt(("--debug",), "debug", help="log debug messages"),
    Opt(
        ("--systemd-cgroup",),
        "systemd_cgroup",
        help="manage cgroups through systemd (needs systemd on the host)",
    ),
]

_BUNDLE = Opt(
    ("--bundle", "-b"), "bundle", "str", help="bundle directory (default: the current directory)"
)
_PID_FILE = Opt(("--pid-file",), "pid_file", "str", help="write the container's init pid here")
_CONSOLE = Opt(
    ("--console-socket",),
    "console_socket",
    "str",
    help="AF_UNIX socket that receives the pty master (process.terminal)",
)
_NO_PIVOT = Opt(("--no-pivot",), "no_pivot", help="use MS_MOVE + chroot instead of pivot_root")
_NO_KEYRING = Opt(("--no-new-keyring",), "no_new_keyring", help="keep the caller's session keyring")
_PRESERVE = Opt(
    ("--preserve-fds",),
    "preserve_fds",
    "int",
    0,
    help="pass N extra file descriptors (3..3+N-1) to the container",
)
_FORMAT = Opt(
    ("--format", "-f"), "format", "choice", "table", ("table", "json"), help="output format"
)
_ID = Arg("id", help="container id (or a bundle directory: id = its name)")


def _value(names: tuple[str, ...], help: str) -> Opt:
    """An update value: kept as text here, parsed by runtime.lifecycle.update as runc does."""
    return Opt(names, names[0][2:].replace("-", "_"), "str", help=help)


_UPDATE_OPTIONS = [
    Opt(
        ("--resources", "-r"),
        "resources",
        "str",
        help="JSON LinuxResources file to apply, '-' for standard input (all other options"
        " are then ignored)",
    ),
    _value(("--blkio-weight",), "per cgroup block I/O weight, 10 to 1000"),
    _value(("--cpu-period",), "CPU CFS period in usecs (0: the system default)"),
    _value(("--cpu-quota",), "CPU CFS hardcap in usecs per period (-1: none)"),
    _value(("--cpu-burst",), "CPU CFS burst in usecs"),
    _value(("--cpu-share", "--cpu-shares"), "CPU shares (relative weight)"),
    _value(("--cpu-rt-period",), "CPU realtime period in usecs"),
    _value(("--cpu-rt-runtime",), "CPU realtime hardcap in usecs per period"),
    _value(("--cpu-idle",), "1: SCHED_IDLE for the cgroup, 0: the default"),
    _value(("--cpuset-cpus",), "CPUs to use (0-3,8)"),
    _value(("--cpuset-mems",), "memory nodes to use (0-1)"),
    _value(("--memory",), "memory limit: bytes or 512m, 1.5g ... (-1: unlimited)"),
    _value(("--memory-reservation",), "memory soft limit: bytes or 256m ..."),
    _value(("--memory-swap",), "memory+swap limit: bytes or 1g ... (-1: unlimited swap)"),
    _value(("--kernel-memory",), "obsolete, ignored"),
    _value(("--kernel-memory-tcp",), "obsolete, ignored"),
    _value(("--pids-limit",), "maximum number of pids (-1: unlimited)"),
    _value(("--l3-cache-schema",), "Intel RDT/CAT L3 cache schema (not supported)"),
    _value(("--mem-bw-schema",), "Intel RDT/MBA memory bandwidth schema (not supported)"),
]

_EXEC_OPTIONS = [
    Opt(
        ("--process", "-p"),
        "process",
        "str",
        help="process.json to run (runtime-spec Process), '-' for standard input",
    ),
    Opt(("--detach", "-d"), "detach", help="do not wait for the process"),
    Opt(("--pid-file",), "pid_file", "str", help="write the process's pid here"),
    Opt(("--tty", "-t"), "tty", help="allocate a pseudo-terminal"),
    _CONSOLE,
    Opt(("--cwd",), "cwd", "str", help="working directory inside the container"),
    Opt(("--env", "-e"), "env", "str", help="set KEY=VALUE (repeatable)", repeat=True),
    Opt(("--user", "-u"), "user", "str", help="UID[:GID] to run as"),
    Opt(
        ("--additional-gids", "-g"),
        "additional_gids",
        "str",
        help="an additional group id (repeatable)",
        repeat=True,
    ),
    Opt(("--cap", "-c"), "cap", "str", help="add a capability (repeatable)", repeat=True),
    Opt(("--no-new-privs",), "no_new_privs", help="set no_new_privs for the process"),
    _PRESERVE,
    Opt(("--ignore-paused",), "ignore_paused", help="exec even if the container is paused"),
    Opt(("--apparmor",), "apparmor", "str", help="AppArmor profile (not supported)"),
    Opt(("--process-label",), "process_label", "str", help="SELinux label (not supported)"),
]

COMMANDS: dict[str, Cmd] = {
    "exec": Cmd(
        "exec",
        "run a process in a running container",
        _EXEC_OPTIONS,
        [Arg("id"), Arg("command", required=False, variadic=True)],
        interspersed=False,
    ),
    "create": Cmd(
        "create",
        "create a container (its process waits for start)",
        [_BUNDLE, _CONSOLE, _PID_FILE, _NO_PIVOT, _NO_KEYRING, _PRESERVE],
        [_ID],
    ),
    "start": Cmd("start", "start the process of a created container", [], [Arg("id")]),
    "state": Cmd("state", "print the state of a container as JSON", [], [Arg("id")]),
    "kill": Cmd(
        "kill",
        "send a signal (default TERM) to the container's init",
        [Opt(("--all", "-a"), "all", help="signal every process in the container")],
        [Arg("id"), Arg("signal", required=False)],
    ),
    "delete": Cmd(
        "delete",
        "delete a container and everything it holds",
        [Opt(("--force", "-f"), "force", help="kill the container first if it is running")],
        [Arg("id")],
    ),
    "run": Cmd(
        "run",
        "create and start a container; wait for it unless --detach",
        [
            _BUNDLE,
            _CONSOLE,
            Opt(("--detach", "-d"), "detach", help="do not wait"),
            Opt(("--keep",), "keep", help="do not delete the container after it exits"),
            _PID_FILE,
            _NO_PIVOT,
            _NO_KEYRING,
            _PRESERVE,
        ],
        [_ID],
    ),
    "list": Cmd(
        "list",
        "list containers",
        [
            _FORMAT,
            Opt(("--quiet", "-q"), "quiet", help="print only the ids"),
        ],
        [],
    ),
    "ps": Cmd(
        "ps",
        "list the processes of a container",
        [_FORMAT],
        [Arg("id"), Arg("ps_args", required=False, variadic=True)],
    ),
    "spec": Cmd(
        "spec",
        "write a default config into the bundle",
        [
            Opt(("--bundle", "-b"), "bundle", "str", ".", help="bundle directory"),
            Opt(("--rootless",), "rootless", help="a config for an unprivileged user"),
            Opt(("--format",), "format", "choice", "json", ("json", "yaml"), help="json or yaml"),
        ],
        [],
    ),
    "validate": Cmd(
        "validate",
        "check a bundle or config file and report every problem",
        [],
        [Arg("path", required=False)],
    ),
    "pause": Cmd("pause", "suspend every process of the container (freezer)", [], [Arg("id")]),
    "resume": Cmd("resume", "resume the processes of a paused container", [], [Arg("id")]),
    "update": Cmd("update", "change a container's cgroup limits", _UPDATE_OPTIONS, [Arg("id")]),
    "events": Cmd(
        "events",
        "print stats and OOM events of a container as JSON lines",
        [
            Opt(("--interval",), "interval", "str", "5s", help="stats interval (Go duration)"),
            Opt(("--stats",), "stats", help="print the stats once, then exit"),
        ],
        [Arg("id")],
    ),
    "features": Cmd("features", "print the features this runtime implements as JSON", [], []),
}

# Verbs the lean parser handles; the rest (and anything it does not recognise) go to click.
HOT_COMMANDS = frozenset({"create", "start", "state", "kill", "delete", "run"})


class Invocation:
    """A parsed command line: global flags, the verb, its options and arguments."""

    __slots__ = ("args", "command", "globals", "options")

    def __init__(
        self,
        globals: dict[str, object],
        command: str,
        options: dict[str, object],
        args: dict[str, object],
    ) -> None:
        self.globals = globals
        self.command = command
        self.options = options
        self.args = args

    def as_tuple(self) -> tuple[object, ...]:
        return (
            sorted(self.globals.items()),
            self.command,
            sorted(self.options.items()),
            sorted(self.args.items()),
        )


def defaults(opts: list[Opt]) -> dict[str, object]:
    return {opt.dest: opt.default for opt in opts}
