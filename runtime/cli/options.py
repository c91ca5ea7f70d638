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
    __slots__ = ("args", "help", "name", "options", "usage")

    def __init__(
        self, name: str, help: str, options: list[Opt], args: list[Arg], usage: str = ""
    ) -> None:
        self.name = name
        self.help = help
        self.options = options
        self.args = args
        self.usage = usage


GLOBAL_OPTIONS = [
    Opt(("--root",), "root", "str", "/run/pyrun", help="directory for container state"),
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

COMMANDS: dict[str, Cmd] = {
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
