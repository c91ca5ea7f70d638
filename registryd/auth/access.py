"""Per-repository access rules (the config's ``auth.access``).

Each rule names an account (a user name, ``"*"`` for any authenticated account, or
``"anonymous"``), a repository glob and actions::

    - {account: "*",         repository: "library/*", actions: [pull]}
    - {account: alice,       repository: "alice/*",   actions: [pull, push, delete]}
    - {account: anonymous,   repository: "public/*",  actions: [pull]}

Semantics, chosen to be order-free:

* The actions an account holds on a repository are the union of the actions of every rule
  that matches both. Rules only grant; nothing denies, so reordering rules changes nothing.
* ``anonymous`` rules match every client, authenticated or not: logging in never loses access.
* The glob is fnmatch's, where ``*`` also matches across ``/`` (``library/*`` matches
  ``library/a/b``). ``*`` as an action means pull, push and delete.
* The catalog (``registry:catalog:*``) lists every repository, so it is granted only to an
  account a rule with repository ``"*"`` allows to pull.

Without an ``access`` section every authenticated account may do everything (the catalog
included) and anonymous clients nothing.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from registryd.auth import Access

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

REPOSITORY_ACTIONS = frozenset({"pull", "push", "delete"})
ANONYMOUS = "anonymous"
ANY_ACCOUNT = "*"


@dataclass(frozen=True)
class Rule:
    account: str  # a name, "*" (any authenticated) or "anonymous"
    repository: str  # fnmatch glob
    actions: frozenset[str]  # subset of REPOSITORY_ACTIONS ("*" already expanded)
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(fnmatch.translate(self.repository)))

    def applies_to(self, account: str | None) -> bool:
        if self.account == ANONYMOUS:
            return True
        return account is not None and self.account in (ANY_ACCOUNT, account)

    def matches(self, account: str | None, name: str) -> bool:
        return self.applies_to(account) and self.regex.fullmatch(name) is not None


def expand_actions(actions: Iterable[str]) -> frozenset[str]:
    """``*`` → every repository action; unknown actions are kept out."""
    wanted = set(actions)
    if "*" in wanted:
        return REPOSITORY_ACTIONS
    return frozenset(wanted & REPOSITORY_ACTIONS)


class AccessRules:
    """What an account may do; ``rules=None`` is the default policy (see the docstring)."""

    def __init__(self, rules: Sequence[Rule] | None) -> None:
        self.rules = None if rules is None else tuple(rules)

    def held(self, account: str | None, access: Access) -> frozenset[str]:
        """The actions ``account`` (None = anonymous) holds on this resource, ``*`` expanded
        for repositories; ``{"*"}`` for a granted catalog; empty for unknown resource types."""
        if access.type == "repository":
            if self.rules is None:
                return REPOSITORY_ACTIONS if account is not None else frozenset()
            held: set[str] = set()
            for rule in self.rules:
                if rule.matches(account, access.name):
                    held |= rule.actions
            return frozenset(held)
        if access.type == "registry" and access.name == "catalog":
            if self.rules is None:
                return frozenset({"*"}) if account is not None else frozenset()
            for rule in self.rules:
                if rule.repository == "*" and "pull" in rule.actions and rule.applies_to(account):
                    return frozenset({"*"})
        return frozenset()

    def granted(self, account: str | None, access: Access) -> frozenset[str]:
        """The requested actions of ``access`` the account holds (a requested ``*`` only when
        it holds every action)."""
        held = self.held(account, access)
        if not held:
            return frozenset()
        granted = set(access.actions & held)
        if "*" in access.actions and ("*" in held or held >= REPOSITORY_ACTIONS):
            granted.add("*")
        return frozenset(granted)

    def allows(self, account: str | None, wanted: Sequence[Access]) -> bool:
        return all(self.granted(account, a) == a.actions for a in wanted)

    def intersect(self, account: str | None, wanted: Sequence[Access]) -> list[Access]:
        """What a token for these scopes may carry: requested ∩ held, never more; resources
        with nothing granted (unknown types among them) are dropped."""
        out = []
        for access in wanted:
            granted = self.granted(account, access)
            if granted:
                out.append(Access(access.type, access.name, granted))
        return out
