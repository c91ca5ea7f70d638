"""Scope strings: distribution's resource scope grammar, names with ports, merging."""

from __future__ import annotations

import pytest

from registryd.auth import Access
from registryd.auth.errors import ScopeError
from registryd.auth.scopes import format_scope, format_scopes, parse_scope, parse_scopes


def acc(kind: str, name: str, *actions: str) -> Access:
    return Access(kind, name, frozenset(actions))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repository:library/alpine:pull", acc("repository", "library/alpine", "pull")),
        ("repository:a/b/c:pull,push", acc("repository", "a/b/c", "pull", "push")),
        ("repository:x:push,pull,delete", acc("repository", "x", "pull", "push", "delete")),
        ("registry:catalog:*", acc("registry", "catalog", "*")),
        # a hostname with a port: the name holds a ':' (the spec's note on naive parsers)
        (
            "repository:localhost:5000/foo/bar:pull",
            acc("repository", "localhost:5000/foo/bar", "pull"),
        ),
        (
            "repository:Reg.Example.com:443/a:pull",
            acc("repository", "Reg.Example.com:443/a", "pull"),
        ),
        ("repository:my-host/app:pull", acc("repository", "my-host/app", "pull")),
        # the deprecated resource class names the same repository
        ("repository(plugin):vieux/sshfs:pull", acc("repository", "vieux/sshfs", "pull")),
        # separators the component grammar allows
        ("repository:a__b/c.d/e---f:pull", acc("repository", "a__b/c.d/e---f", "pull")),
        # an empty action list grants nothing but is well formed
        ("repository:foo:", acc("repository", "foo")),
    ],
)
def test_parse_valid(text: str, expected: Access) -> None:
    assert parse_scope(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "repository",
        "repository:foo",
        "Repository:foo:pull",  # type is lowercase
        "repository:Foo:pull",  # repository components are lowercase
        "repository:foo:PULL",
        "repository:foo:pull;push",
        "repository::pull",
        "repository:foo/:pull",
        "repository:/foo:pull",
        "repository:../x:pull",
        "repository:a//b:pull",
        "repository:foo_:pull",
        "repository:host:port/x:pull",  # a port is digits
        "repository(:foo:pull",
    ],
)
def test_parse_malformed(text: str) -> None:
    with pytest.raises(ScopeError):
        parse_scope(text)


def test_parse_scopes_splits_spaces_and_merges_one_resource() -> None:
    values = [
        "repository:a:pull repository:b:push",
        "repository:a:push",
        "",
        "  registry:catalog:*  ",
    ]
    assert parse_scopes(values) == [
        acc("repository", "a", "pull", "push"),
        acc("repository", "b", "push"),
        acc("registry", "catalog", "*"),
    ]


def test_parse_scopes_refuses_one_bad_entry() -> None:
    with pytest.raises(ScopeError, match="invalid resource name"):
        parse_scopes(["repository:a:pull repository:A:pull"])


def test_format_orders_actions_and_round_trips() -> None:
    access = acc("repository", "localhost:5000/x", "delete", "push", "pull")
    assert format_scope(access) == "repository:localhost:5000/x:pull,push,delete"
    assert parse_scope(format_scope(access)) == access
    mount = [acc("repository", "dst", "push", "pull"), acc("repository", "src", "pull")]
    assert format_scopes(mount) == "repository:dst:pull,push repository:src:pull"
