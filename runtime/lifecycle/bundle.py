"""A bundle directory -> its validated config (parse, schema, semantics, host probes).

Rule 2: everything is checked here, before create makes its first state directory, cgroup or
process; every problem found is reported together.
"""

from __future__ import annotations

import os

from runtime.errors import PyrunError, SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.spec.types import Config

CONFIG_NAMES = ("config.json", "config.yaml", "config.yml")


def config_path(bundle: str) -> str:
    """The bundle's one config file; an error if there is none or more than one."""
    if not os.path.isdir(bundle):
        raise PyrunError(f"bundle {bundle}: not a directory")
    found = [name for name in CONFIG_NAMES if os.path.isfile(f"{bundle}/{name}")]
    if not found:
        raise PyrunError(f"bundle {bundle}: no config.json or config.yaml")
    if len(found) > 1:
        raise PyrunError(f"bundle {bundle}: both {found[0]} and {found[1]} exist; keep exactly one")
    return f"{bundle}/{found[0]}"


def read_config(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as err:
        raise PyrunError(f"{path}: {(err.strerror or 'cannot read').lower()}") from None


def load_bundle(bundle: str, seccomp_cache: str | None = None) -> tuple[Config, str]:
    """(config, absolute rootfs path) of a bundle; SpecError lists every problem.
    ``seccomp_cache``: a profile compiled before (runtime/linux/seccomp_cache.py) has passed
    the libseccomp check already."""
    from runtime.spec import parse_config

    path = config_path(bundle)
    data = read_config(path)
    try:
        config = parse_config(data, path)
    except SpecError as err:
        problems = err.problems + host_problems_raw(bundle, _rootfs_of_bytes(data, path))
        problems += _seccomp_problems_of_bytes(data, path)
        raise SpecError(path, problems) from None
    rootfs = rootfs_path(bundle, config)
    _mount_image_snapshot(config, bundle, rootfs)
    problems = host_problems(config, rootfs, seccomp_cache)
    if problems:
        raise SpecError(path, problems)
    return config, rootfs


IMAGE_SNAPSHOT = "io.pyrun.image.snapshot"  # set by `pyrun image unpack --snapshotter overlay`


def _mount_image_snapshot(config: Config, bundle: str, rootfs: str) -> None:
    """A bundle from ``pyrun image unpack`` whose overlay a reboot took: mount it again (as
    containerd does for its snapshots). imagetools is imported only when the rootfs is not a
    mount point: create is on the hot path."""
    notes = config.get("annotations")
    if not notes or IMAGE_SNAPSHOT not in notes or os.path.ismount(rootfs):
        return
    from imagetools.snapshots import remount

    remount(dict(notes), bundle)


def rootfs_path(bundle: str, config: Config) -> str:
    root = config.get("root", {}).get("path", "rootfs")
    return os.path.normpath(root if root.startswith("/") else f"{bundle}/{root}")


def host_problems(config: Config, rootfs: str, seccomp_cache: str | None = None) -> list[str]:
    """Checks against this host (rule 2's host probes)."""
    problems = host_problems_raw("", rootfs)
    for index, ns in enumerate(config.get("linux", {}).get("namespaces", [])):
        path = ns.get("path")
        if path and not os.path.exists(path):
            problems.append(f"linux.namespaces[{index}].path: {path} does not exist")
    seccomp = config.get("linux", {}).get("seccomp")
    if seccomp and not _compiled_before(seccomp, seccomp_cache):
        problems += seccomp_problems(seccomp, valid=True)
    return problems


def _compiled_before(seccomp: object, cache: str | None) -> bool:
    if cache is None:
        return False
    from runtime.linux.seccomp_cache import cache_path

    return os.path.exists(cache_path(cache, seccomp))


def seccomp_problems(seccomp: object, valid: bool = False) -> list[str]:
    """What this host's libseccomp refuses in ``linux.seccomp`` (unknown syscall names above
    all; in a ``valid`` config also rules it cannot combine); names of syscalls newer than it
    are skipped with a debug line, as runc does."""
    if not isinstance(seccomp, dict):
        return []
    from runtime.linux import seccomp as filters

    found = filters.problems(seccomp)
    if valid and not found:
        found = filters.conflicts(seccomp)
    if not found:
        from runtime import log

        for name in filters.skipped_names(seccomp):
            log.debug(f"unknown seccomp syscall {name!r} ignored")
    return found


def _seccomp_problems_of_bytes(data: bytes, path: str) -> list[str]:
    from runtime.spec.document import decode

    try:
        document = decode(data, path).data
    except SpecError:
        return []
    linux = document.get("linux") if isinstance(document, dict) else None
    return seccomp_problems(linux.get("seccomp") if isinstance(linux, dict) else None)


def host_problems_raw(bundle: str, rootfs: str | None) -> list[str]:
    if rootfs is None:
        return []
    if bundle and not rootfs.startswith("/"):
        rootfs = os.path.normpath(f"{bundle}/{rootfs}")
    if not os.path.isdir(rootfs):
        return [f"root.path: rootfs {rootfs} does not exist or is not a directory"]
    return []


def _rootfs_of_bytes(data: bytes, path: str) -> str | None:
    from runtime.spec.document import decode

    try:
        return rootfs_guess(decode(data, path).data)
    except SpecError:
        return None


def rootfs_guess(document: object) -> str | None:
    """root.path of a config that failed validation, if it names one."""
    root = document.get("root") if isinstance(document, dict) else None
    value = root.get("path") if isinstance(root, dict) else None
    return value if isinstance(value, str) and value else None
