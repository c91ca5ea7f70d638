"""Dockerfile-style changes for ``pyrun image commit -c`` (docker commit --change).

Supported: CMD, ENTRYPOINT (JSON array = exec form, anything else = shell form
``/bin/sh -c "..."``), ENV (``K=V ...`` or ``K V``), WORKDIR, USER, LABEL (``K=V ...``),
EXPOSE (``80``, ``80/tcp``, ``53/udp``), VOLUME (JSON array or words). Pure: no I/O.
"""

from __future__ import annotations

import json
import shlex

from imagetools.errors import ImageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "WORKDIR", "USER", "LABEL", "EXPOSE", "VOLUME")


class ChangeError(ImageError):
    """A -c/--change that is not one of the supported instructions, or malformed."""


def apply_changes(settings: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """A copy of the image config's ``config`` object with ``changes`` applied in order."""
    result: dict[str, Any] = json.loads(json.dumps(settings or {}))
    # docker's builder (cmdSet): ENTRYPOINT resets only an inherited Cmd, never one that a
    # CMD of this change list sets, before or after it.
    cmd_set = any(_keyword(change) == "CMD" for change in changes)
    for change in changes:
        _apply(result, change, cmd_set)
    return result


def _keyword(change: str) -> str:
    return change.strip().partition(" ")[0].upper()


def _apply(settings: dict[str, Any], change: str, cmd_set: bool) -> None:
    keyword = _keyword(change)
    rest = change.strip().partition(" ")[2].strip()
    if keyword not in INSTRUCTIONS:
        raise ChangeError(
            f"invalid change {change!r}: {keyword or 'nothing'} is not one of"
            f" {', '.join(INSTRUCTIONS)}"
        )
    if not rest:
        raise ChangeError(f"invalid change {change!r}: {keyword} needs an argument")
    if keyword in ("CMD", "ENTRYPOINT"):
        settings["Cmd" if keyword == "CMD" else "Entrypoint"] = _command(rest, change)
        if keyword == "ENTRYPOINT" and not cmd_set:
            settings.pop("Cmd", None)  # docker: a new ENTRYPOINT resets an inherited CMD
    elif keyword == "ENV":
        env = list(settings.get("Env") or [])
        for key, value in _pairs(rest, change, allow_space_form=True):
            env = [item for item in env if item.partition("=")[0] != key]
            env.append(f"{key}={value}")
        settings["Env"] = env
    elif keyword == "LABEL":
        labels = dict(settings.get("Labels") or {})
        for key, value in _pairs(rest, change, allow_space_form=False):
            labels[key] = value
        settings["Labels"] = labels
    elif keyword == "WORKDIR":
        settings["WorkingDir"] = _one_word(rest, change)
    elif keyword == "USER":
        settings["User"] = _one_word(rest, change)
    elif keyword == "EXPOSE":
        ports = dict(settings.get("ExposedPorts") or {})
        for word in _words(rest, change):
            ports[_port(word, change)] = {}
        settings["ExposedPorts"] = ports
    elif keyword == "VOLUME":
        volumes = dict(settings.get("Volumes") or {})
        paths = _json_array(rest, change) if rest.startswith("[") else _words(rest, change)
        for path in paths:
            volumes[path] = {}
        settings["Volumes"] = volumes


def _command(rest: str, change: str) -> list[str]:
    if rest.startswith("["):
        return _json_array(rest, change)
    return ["/bin/sh", "-c", rest]


def _json_array(rest: str, change: str) -> list[str]:
    try:
        value = json.loads(rest)
    except ValueError:
        raise ChangeError(f"invalid change {change!r}: not a JSON array of strings") from None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ChangeError(f"invalid change {change!r}: not a JSON array of strings")
    return value


def _words(rest: str, change: str) -> list[str]:
    try:
        return shlex.split(rest)
    except ValueError as err:
        raise ChangeError(f"invalid change {change!r}: {err}") from None


def _one_word(rest: str, change: str) -> str:
    words = _words(rest, change)
    if len(words) != 1:
        raise ChangeError(f"invalid change {change!r}: expected one value")
    return words[0]


def _pairs(rest: str, change: str, allow_space_form: bool) -> list[tuple[str, str]]:
    words = _words(rest, change)
    if allow_space_form and words and "=" not in words[0]:
        # ENV KEY value with spaces (the legacy form): everything after the key is the value.
        key, _, value = rest.partition(" ")
        return [(key, " ".join(_words(value, change)) if value.strip() else "")]
    pairs = []
    for word in words:
        key, equals, value = word.partition("=")
        if not equals or not key:
            raise ChangeError(f"invalid change {change!r}: {word!r} is not KEY=VALUE")
        pairs.append((key, value))
    return pairs


def _port(word: str, change: str) -> str:
    number, _, protocol = word.partition("/")
    protocol = (protocol or "tcp").lower()
    if (
        not number.isdigit()
        or not 0 < int(number) < 65536
        or protocol not in ("tcp", "udp", "sctp")
    ):
        raise ChangeError(f"invalid change {change!r}: {word!r} is not PORT[/tcp|udp|sctp]")
    return f"{int(number)}/{protocol}"
