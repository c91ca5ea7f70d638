"""Token scopes: ``type:name:action[,action]*``, several separated by spaces.

The grammar (distribution's spec/auth/scope.md)::

    scope          := resourcescope [ ' ' resourcescope ]*
    resourcescope  := resourcetype ":" resourcename ":" action [ ',' action ]*
    resourcetype   := /[a-z0-9]+/ [ '(' /[a-z0-9]+/ ')' ]
    resourcename   := [ hostname '/' ] component [ '/' component ]*
    hostname       := hostcomponent [ '.' hostcomponent ]* [ ':' port-number ]
    action         := /[a-z*]*/

A name may hold one ':' (a port in its hostname), so the type ends at the first ':' and the
actions start after the last one. The resource class (``repository(plugin)``) is deprecated
and ignored: it names the same repository.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from registryd.auth import Access
from registryd.auth.errors import ScopeError

if TYPE_CHECKING:
    from collections.abc import Iterable

_TYPE = re.compile(r"([a-z0-9]+)(?:\([a-z0-9]+\))?")
_COMPONENT = r"[a-z0-9]+(?:(?:[_.]|__|-+)[a-z0-9]+)*"
_HOST_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"{_HOST_PART}(?:\.{_HOST_PART})*(?::[0-9]+)?"
_NAME = re.compile(rf"(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*")
_ACTION = re.compile(r"[a-z*]*")
# The order actions are written in (challenges, token responses); others follow sorted.
_ORDER = {"pull": 0, "push": 1, "delete": 2}


def parse_scope(text: str) -> Access:
    """One resource scope. Raises ScopeError naming what is wrong."""
    kind, sep, rest = text.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2:
        raise ScopeError(f"scope {text!r} is not type:name:actions")
    type_match = _TYPE.fullmatch(kind)
    if type_match is None:
        raise ScopeError(f"scope {text!r}: invalid resource type {kind!r}")
    if not _NAME.fullmatch(name):
        raise ScopeError(f"scope {text!r}: invalid resource name {name!r}")
    wanted = actions.split(",") if actions else []
    for action in wanted:
        if not _ACTION.fullmatch(action):
            raise ScopeError(f"scope {text!r}: invalid action {action!r}")
    return Access(type_match.group(1), name, frozenset(a for a in wanted if a))


def parse_scopes(values: Iterable[str]) -> list[Access]:
    """Every scope in ``values`` (each may hold several, space separated), the actions of one
    resource merged, in first-seen order."""
    merged: dict[tuple[str, str], set[str]] = {}
    for value in values:
        for text in value.split(" "):
            if text:
                access = parse_scope(text)
                merged.setdefault((access.type, access.name), set()).update(access.actions)
    return [Access(kind, name, frozenset(actions)) for (kind, name), actions in merged.items()]


def sorted_actions(actions: Iterable[str]) -> list[str]:
    return sorted(actions, key=lambda a: (_ORDER.get(a, len(_ORDER)), a))


def format_scope(access: Access) -> str:
    return f"{access.type}:{access.name}:{','.join(sorted_actions(access.actions))}"


def format_scopes(accesses: Iterable[Access]) -> str:
    """The space-separated scope list of a challenge or a token response."""
    return " ".join(format_scope(a) for a in accesses)
