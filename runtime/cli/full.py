"""The full command line on click, built from the same table as the lean parser."""

from __future__ import annotations

import click

from runtime.cli.options import COMMANDS, GLOBAL_OPTIONS, Cmd, Invocation, Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _click_option(opt: Opt) -> Callable[[Any], Any]:
    if opt.kind == "flag":
        return click.option(*opt.names, opt.dest, is_flag=True, default=False, help=opt.help)
    kind: Any = {"str": str, "int": int}.get(opt.kind)
    if opt.kind == "choice":
        kind = click.Choice(opt.choices)
    return click.option(
        *opt.names,
        opt.dest,
        type=kind,
        default=() if opt.repeat else opt.default,
        multiple=opt.repeat,
        show_default=opt.default not in (None, ""),
        help=opt.help,
    )


def _make_command(cmd: Cmd, sink: Callable[[Invocation], Any]) -> click.Command:
    def callback(**values: Any) -> Any:
        context = click.get_current_context()
        globals_ = context.find_root().params
        options = {opt.dest: values[opt.dest] for opt in cmd.options}
        args = {arg.dest: values[arg.dest] for arg in cmd.args}
        return sink(Invocation(dict(globals_), cmd.name, options, args))

    params: list[click.Parameter] = []
    for arg in cmd.args:
        params.append(
            click.Argument(
                [arg.dest],
                required=arg.required,
                nargs=-1 if arg.variadic else 1,
                metavar=arg.dest.upper(),
            )
        )
    settings = dict(_CONTEXT, allow_interspersed_args=cmd.interspersed)
    command = click.Command(
        cmd.name, callback=callback, params=params, help=cmd.help, context_settings=settings
    )
    for opt in cmd.options:
        _click_option(opt)(command)
    return command


def build_cli(sink: Callable[[Invocation], Any]) -> click.Group:
    """The ``pyrun`` group; ``sink`` receives each parsed invocation."""

    @click.group(context_settings=_CONTEXT, help=_HELP)
    @click.version_option(package_name="pyrun", prog_name="pyrun", message=_version_message())
    def cli(**_: Any) -> None:
        pass

    for opt in GLOBAL_OPTIONS:
        _click_option(opt)(cli)
    for cmd in COMMANDS.values():
        cli.add_command(_make_command(cmd, sink))
    from imagetools.cli import load_topics

    cli.add_command(load_topics())
    return cli


_HELP = """pyrun: an OCI container runtime with runc's command line.

Bundles hold config.json or config.yaml, validated against the JSON Schemas in schema/ before
anything touches the kernel. Exit codes: 0 success, 1 error, 2 usage error; `run` in the
foreground exits with the container's code (128+N when killed by signal N)."""


def _version_message() -> str:
    return "%(prog)s version %(version)s\nspec: 1.2.0"


def _log_usage_error(argv: list[str], message: str) -> None:
    """Callers read the error from --log (containerd: the last error line of log.json): a
    command line click refused still gets its line there, like runc's."""
    from runtime import log

    values = {"--log": None, "--log-format": "text"}
    for index, token in enumerate(argv):
        name, equals, value = token.partition("=")
        if name in values:
            if equals:
                values[name] = value
            elif index + 1 < len(argv):
                values[name] = argv[index + 1]
    if values["--log"]:
        log.configure(values["--log"], values["--log-format"] or "text")
        log.error(message)


def run_click(argv: list[str]) -> int:
    from runtime.cli.edge import dispatch

    cli = build_cli(dispatch)
    try:
        result = cli.main(args=argv, prog_name="pyrun", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.UsageError as err:
        err.show()
        _log_usage_error(argv, err.format_message())
        return 2
    except click.ClickException as err:
        err.show()
        _log_usage_error(argv, err.format_message())
        return err.exit_code
    except click.Abort:
        return 130
    return result if isinstance(result, int) else 0
