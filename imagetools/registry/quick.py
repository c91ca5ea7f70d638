"""The click-free path of ``pyrun image pull`` (issue 4's target: pull as fast as skopeo).

``import click`` and the full CLI cost ~45 ms of CPU before the first request: a fifth of a
whole pull of a 30 MB image from a local registry (bench/images.py measures both). ``main``
takes only this shape and runs it exactly as ``imagetools/cli/registry.py``'s command does
(same progress, same stdout, same error line and exit code)::

    image [--root R] pull [--platform P] [--tls-verify[=]BOOL] [--cert-dir D] [-q|--quiet] REF

(``--opt=value`` or ``--opt value``; BOOL as click spells it: true/false, yes/no, 1/0, on/off).
Anything else (help, other commands, unknown options, two refs) returns None before any side
effect, and the caller runs click. Reached through imagetools/quick.py.
"""

from __future__ import annotations

import sys

_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off")


class Options:
    __slots__ = ("cert_dir", "platform", "quiet", "ref", "tls_verify")

    def __init__(self) -> None:
        self.cert_dir: str | None = None
        self.platform: str | None = None
        self.tls_verify: bool | None = None
        self.quiet = False
        self.ref = ""


def _parse(args: list[str]) -> Options | None:
    """The words after ``pull``."""
    options = Options()
    words = list(args)
    position = 0

    def value(inline: str | None) -> str | None:
        nonlocal position
        if inline is not None:
            return inline
        if position < len(words):
            position += 1
            return words[position - 1]
        return None

    ref: str | None = None
    while position < len(words):
        word = words[position]
        position += 1
        name, equals, inline = word.partition("=")
        given = inline if equals else None
        if name == "--platform":
            options.platform = value(given)
            if not options.platform:
                return None
        elif name == "--cert-dir":
            options.cert_dir = value(given)
            if not options.cert_dir:
                return None
        elif name == "--tls-verify":
            text = value(given)
            if text is None or text.lower() not in (*_TRUE, *_FALSE):
                return None
            options.tls_verify = text.lower() in _TRUE
        elif word in ("-q", "--quiet"):
            options.quiet = True
        elif word.startswith("-") or ref is not None:
            return None  # help, unknown options, a second argument: click says what is wrong
        else:
            ref = word
    if ref is None:
        return None
    options.ref = ref
    return options


def main(root: str | None, args: list[str]) -> int | None:
    """Run ``pyrun image [--root ROOT] pull ARGS`` if it is a plain pull; None: not handled,
    nothing done."""
    options = _parse(args)
    if options is None:
        return None
    from imagetools.paths import default_root
    from imagetools.progress import with_progress
    from imagetools.pull import pull
    from imagetools.store import Store
    from runtime.errors import PyrunError

    try:
        descriptor = with_progress(
            options.quiet,
            lambda progress: pull(
                Store(root or default_root()),
                options.ref,
                platform=options.platform,
                tls_verify=options.tls_verify,
                progress=progress,
                cert_dir=options.cert_dir,
            ),
        )
    except PyrunError as err:
        from runtime.cli.edge import _report

        _report(err.message)
        return err.exit_code
    sys.stdout.write(descriptor["digest"] + "\n")
    return 0
