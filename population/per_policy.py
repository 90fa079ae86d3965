"""What a population run works out of a policy once, not once per person: a loaded policy is a
frozen value, so what is read from it holds for the whole run."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from policy import Policy

T = TypeVar("T")


def per_policy(fn: Callable[[Policy], T]) -> Callable[[Policy], T]:
    """``fn`` worked out once per policy object. The policy is held beside the answer, so its
    id is not reused by another policy while the answer is kept."""
    held: dict[int, tuple[Policy, T]] = {}

    @functools.wraps(fn)
    def once(policy: Policy) -> T:
        found = held.get(id(policy))
        if found is None or found[0] is not policy:
            found = held[id(policy)] = (policy, fn(policy))
        return found[1]

    return once
