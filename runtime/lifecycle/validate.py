"""``pyrun validate [BUNDLE|FILE]``: the full report, every problem at once."""

from __future__ import annotations

import os

from runtime.errors import SpecError


def validate(target: str) -> tuple[str, bool]:
    """(report text, valid?) for a bundle directory or a config file."""
    from runtime.lifecycle.bundle import (
        config_path,
        host_problems,
        host_problems_raw,
        read_config,
        rootfs_guess,
        rootfs_path,
        seccomp_problems,
    )
    from runtime.spec import problems_in
    from runtime.spec.defaults import apply_defaults
    from runtime.spec.document import decode

    path = config_path(target) if os.path.isdir(target) else target
    bundle = os.path.dirname(os.path.abspath(path))
    try:
        document = decode(read_config(path), path)
    except SpecError as err:
        return str(err) + "\n", False
    problems = problems_in(document, full_report=True)
    if problems:
        problems += host_problems_raw(bundle, rootfs_guess(document.data))
        linux = document.data.get("linux") if isinstance(document.data, dict) else None
        problems += seccomp_problems(linux.get("seccomp") if isinstance(linux, dict) else None)
    else:
        config = apply_defaults(document.data)
        problems = host_problems(config, rootfs_path(bundle, config))
    if problems:
        return str(SpecError(path, problems)) + "\n", False
    return f"{path}: valid\n", True
