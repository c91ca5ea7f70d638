"""Access rules: union of matching rules, anonymous rules for everyone, the default policy."""

from __future__ import annotations

import itertools

from registryd.auth import Access
from registryd.auth.access import AccessRules, Rule, expand_actions

ALL = frozenset({"pull", "push", "delete"})


def repo(name: str, *actions: str) -> Access:
    return Access("repository", name, frozenset(actions))


CATALOG = Access("registry", "catalog", frozenset({"*"}))


def rule(account: str, repository: str, *actions: str) -> Rule:
    return Rule(account, repository, expand_actions(actions))


RULES = [
    rule("alice", "alice/*", "*"),
    rule("*", "library/*", "pull"),
    rule("bob", "*", "pull"),
    rule("anonymous", "public/*", "pull"),
    rule("carol", "team/*", "push"),
    rule("carol", "team/app", "pull"),
]


def test_default_policy_authenticated_everything_anonymous_nothing() -> None:
    rules = AccessRules(None)
    assert rules.held("anyone", repo("x/y")) == ALL
    assert rules.held(None, repo("x/y")) == frozenset()
    assert rules.allows("anyone", [repo("a", "pull", "push", "delete"), CATALOG])
    assert not rules.allows(None, [repo("a", "pull")])
    assert not rules.allows(None, [CATALOG])


def test_named_star_and_anonymous_accounts() -> None:
    rules = AccessRules(RULES)
    assert rules.held("alice", repo("alice/app")) == ALL
    assert rules.held("alice", repo("alice/deep/er")) == ALL  # '*' crosses '/'
    assert rules.held("bob", repo("alice/app")) == {"pull"}
    assert rules.held("dave", repo("library/busybox")) == {"pull"}  # "*": any authenticated
    assert rules.held(None, repo("library/busybox")) == frozenset()  # ... but not anonymous
    assert rules.held(None, repo("public/x")) == {"pull"}
    # anonymous rules apply to everyone: logging in never loses access
    assert rules.held("dave", repo("public/x")) == {"pull"}
    assert rules.held("dave", repo("alice/app")) == frozenset()
    assert rules.held(None, repo("alicex/app")) == frozenset()


def test_union_of_matching_rules_regardless_of_order() -> None:
    for order in itertools.permutations(RULES):
        rules = AccessRules(order)
        assert rules.held("carol", repo("team/app")) == {"pull", "push"}
        assert rules.held("carol", repo("team/other")) == {"push"}
        assert rules.held("bob", repo("public/a")) == {"pull"}


def test_glob_is_fnmatch_anchored() -> None:
    rules = AccessRules([rule("u", "a?c/[xy]*", "pull")])
    assert rules.held("u", repo("abc/x1")) == {"pull"}
    assert rules.held("u", repo("abc/z1")) == frozenset()
    assert rules.held("u", repo("zabc/x1")) == frozenset()


def test_intersect_never_grants_more_than_asked_and_drops_unknown_types() -> None:
    rules = AccessRules(RULES)
    wanted = [
        repo("alice/app", "pull"),
        repo("library/x", "pull", "push"),
        repo("secret/x", "pull"),
        Access("namespace", "alice", frozenset({"pull"})),
        Access("registry", "other", frozenset({"*"})),
    ]
    assert rules.intersect("alice", wanted) == [
        repo("alice/app", "pull"),
        repo("library/x", "pull"),
    ]


def test_requested_star_needs_every_action() -> None:
    rules = AccessRules(RULES)
    assert rules.granted("alice", repo("alice/app", "*")) == {"*"}
    assert rules.granted("bob", repo("alice/app", "*")) == frozenset()
    assert not rules.allows("bob", [repo("alice/app", "*")])


def test_catalog_needs_pull_on_every_repository() -> None:
    rules = AccessRules(RULES)
    assert rules.allows("bob", [CATALOG])  # rule bob "*" pull
    assert not rules.allows("alice", [CATALOG])
    assert not rules.allows(None, [CATALOG])
    assert AccessRules([rule("anonymous", "*", "pull")]).allows(None, [CATALOG])


def test_nothing_wanted_is_allowed() -> None:
    assert AccessRules(RULES).allows("nobody", [])
