"""Image config -> runtime config (OCI image-spec conversion.md), on the runtime's default
profile (``runtime.lifecycle.specgen.default_config``: Docker's capabilities, mounts, masked
paths and seccomp profile).

=========================  =====================================================================
image config               runtime config
=========================  =====================================================================
Entrypoint + Cmd           process.args (docker's rule: Cmd appended to Entrypoint; both empty is
                           an error)
Env                        process.env (the image's; PATH and HOME added only when absent)
WorkingDir                 process.cwd ("/" when empty; a relative one is taken from "/")
User                       process.user: "uid", "uid:gid", "name", "name:group", resolved in the
                           IMAGE's /etc/passwd and /etc/group (read inside the rootfs, symlinks
                           kept inside it: CVE-2024-9676); additionalGids from /etc/group
                           membership when no group is given (moby/sys/user's rules)
Labels                     annotations (they win over the implicit ones below)
os, architecture, variant  org.opencontainers.image.{os,architecture,variant,author,created,
author, created,           stopSignal}
StopSignal
ExposedPorts               org.opencontainers.image.exposedPorts ("80/tcp,53/udp", sorted)
Volumes                    io.pyrun.image.volumes ("/data,/logs", sorted): recorded only; no
                           mount is made for them
=========================  =====================================================================

root is {"path": "rootfs", "readonly": false}; terminal false; the hostname stays the
runtime's default.
"""

from __future__ import annotations

from imagetools.errors import ImageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EXPOSED_PORTS = "org.opencontainers.image.exposedPorts"
STOP_SIGNAL = "org.opencontainers.image.stopSignal"
VOLUMES = "io.pyrun.image.volumes"
_MAX_ID = (1 << 31) - 1
_IMPLICIT = {
    "os": "org.opencontainers.image.os",
    "architecture": "org.opencontainers.image.architecture",
    "variant": "org.opencontainers.image.variant",
    "os.version": "org.opencontainers.image.os.version",
    "author": "org.opencontainers.image.author",
    "created": "org.opencontainers.image.created",
}


class ConversionError(ImageError):
    """The image config cannot become a runtime config (no command, unknown user ...)."""


class User:
    __slots__ = ("additional_gids", "gid", "home", "uid")

    def __init__(self, uid: int, gid: int, additional_gids: list[int], home: str) -> None:
        self.uid = uid
        self.gid = gid
        self.additional_gids = additional_gids
        self.home = home


def runtime_config(
    image: dict[str, Any],
    rootfs: str | None,
    *,
    rootless: bool = False,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The runtime config for ``image`` (an image config document). ``rootfs``: the unpacked
    tree where /etc/passwd and /etc/group are looked up (None: numeric users only).
    ``annotations``: extra ones (pyrun's own), added last."""
    from runtime.lifecycle.specgen import default_config

    settings = runtime_settings(image)
    config = default_config(rootless)
    process = config["process"]
    process["terminal"] = False
    process["args"] = _args(settings)
    env = _env(settings)
    process["cwd"] = _cwd(settings)
    user = resolve_user(_string(settings, "User"), rootfs)
    process["user"] = {"uid": user.uid, "gid": user.gid}
    if user.additional_gids:
        process["user"]["additionalGids"] = user.additional_gids
    names = {item.partition("=")[0] for item in env}
    if "PATH" not in names:
        env.append(f"PATH={DEFAULT_PATH}")
    if "HOME" not in names:
        env.append(f"HOME={user.home}")
    process["env"] = env
    config["root"] = {"path": "rootfs", "readonly": False}
    config["annotations"] = _annotations(image, settings, annotations or {})
    return config


def check(image: dict[str, Any]) -> None:
    """What can be checked before any layer is unpacked (os, command, env): a bad config
    fails before anything is written."""
    runtime_settings(image)


def runtime_settings(image: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(image, dict):
        raise ConversionError("image config: not a JSON object")
    image_os = image.get("os")
    if image_os not in (None, "", "linux"):
        raise ConversionError(f"image config: os {image_os!r} is not linux")
    settings = image.get("config") or {}
    if not isinstance(settings, dict):
        raise ConversionError("image config: config is not an object")
    _args(settings)
    _env(settings)
    return settings


def _string(settings: dict[str, Any], key: str) -> str:
    value = settings.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConversionError(f"image config: config.{key} is not a string")
    return value


def _strings(settings: dict[str, Any], key: str) -> list[str]:
    value = settings.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConversionError(f"image config: config.{key} is not a list of strings")
    return list(value)


def _args(settings: dict[str, Any]) -> list[str]:
    args = _strings(settings, "Entrypoint") + _strings(settings, "Cmd")
    if not args:
        raise ConversionError("the image has no command: its config has neither Entrypoint nor Cmd")
    return args


def _env(settings: dict[str, Any]) -> list[str]:
    env = _strings(settings, "Env")
    for item in env:
        if "=" not in item or item.startswith("="):
            raise ConversionError(f"image config: config.Env entry {item!r} is not NAME=value")
    return env


def _cwd(settings: dict[str, Any]) -> str:
    cwd = _string(settings, "WorkingDir")
    if not cwd:
        return "/"
    return cwd if cwd.startswith("/") else f"/{cwd}"


def _annotations(
    image: dict[str, Any], settings: dict[str, Any], extra: dict[str, str]
) -> dict[str, str]:
    annotations: dict[str, str] = {}
    for key, annotation in _IMPLICIT.items():
        value = image.get(key)
        if isinstance(value, str) and value:
            annotations[annotation] = value
        elif isinstance(value, list) and value:
            annotations[annotation] = ",".join(str(v) for v in value)
    stop = _string(settings, "StopSignal")
    if stop:
        annotations[STOP_SIGNAL] = stop
    for key, annotation in (("ExposedPorts", EXPOSED_PORTS), ("Volumes", VOLUMES)):
        value = settings.get(key)
        if value:
            if not isinstance(value, dict):
                raise ConversionError(f"image config: config.{key} is not an object")
            annotations[annotation] = ",".join(sorted(value))
    labels = settings.get("Labels") or {}
    if not isinstance(labels, dict):
        raise ConversionError("image config: config.Labels is not an object")
    for key, value in labels.items():
        if isinstance(value, str):
            annotations[key] = value  # labels win (conversion.md)
    annotations.update(extra)
    return annotations


# -- users ------------------------------------------------------------------------------------


def _id(text: str) -> int | None:
    if not text.isdigit():
        return None
    value = int(text)
    if value > _MAX_ID:
        raise ConversionError(f"user or group id {text} is out of range (0-{_MAX_ID})")
    return value


def _lines(data: bytes | None) -> list[list[str]]:
    if data is None:
        return []
    rows = []
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def _field_id(row: list[str], index: int) -> int | None:
    try:
        return _id(row[index])
    except (IndexError, ConversionError):
        return None


def resolve_user(spec: str, rootfs: str | None) -> User:
    """``spec`` (the image's User: "", "uid", "uid:gid", "name", "name:group", ...) with
    moby/sys/user's rules, looked up in the image's own /etc/passwd and /etc/group."""
    from imagetools.layer import read_file_in_root

    user_arg, _, group_arg = spec.partition(":")
    uid_arg = _id(user_arg) if user_arg else None
    gid_arg = _id(group_arg) if group_arg else None
    passwd = _lines(read_file_in_root(rootfs, "etc/passwd")) if rootfs else []
    groups = _lines(read_file_in_root(rootfs, "etc/group")) if rootfs else []

    uid, gid, home = 0, 0, "/"
    matched = ""
    for row in passwd:
        row_uid = _field_id(row, 2)
        if row_uid is None:
            continue
        if not user_arg:
            hit = row_uid == 0
        elif uid_arg is not None:
            hit = row_uid == uid_arg
        else:
            hit = row[0] == user_arg
        if hit:
            matched = row[0]
            uid = row_uid
            gid = _field_id(row, 3) or 0
            home = row[5] if len(row) > 5 and row[5] else "/"
            break
    else:
        if user_arg:
            if uid_arg is None:
                where = "in the image's /etc/passwd" if passwd else "(the image has no /etc/passwd)"
                raise ConversionError(f"unable to find user {user_arg} {where}")
            uid = uid_arg

    additional: list[int] = []
    if group_arg:
        for row in groups:
            row_gid = _field_id(row, 2)
            if row_gid is None:
                continue
            if (gid_arg is not None and row_gid == gid_arg) or (
                gid_arg is None and row[0] == group_arg
            ):
                gid = row_gid
                break
        else:
            if gid_arg is None:
                where = "in the image's /etc/group" if groups else "(the image has no /etc/group)"
                raise ConversionError(f"unable to find group {group_arg} {where}")
            gid = gid_arg
    elif matched:
        for row in groups:
            row_gid = _field_id(row, 2)
            members = row[3].split(",") if len(row) > 3 else []
            if row_gid is not None and matched in members and row_gid not in additional:
                additional.append(row_gid)
    return User(uid, gid, additional, home)
