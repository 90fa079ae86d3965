"""A bounded cache: what follows from immutable inputs, kept until there are too many.

The core keeps what repeats across records and requests (a date text's moment, a concept's
reading, a criterion's result when the record holds nothing for it). Each cache is emptied
when it reaches its limit: simple, and no entry outlives its usefulness for long.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Kept(dict[K, V], Generic[K, V]):
    """A dict of at most ``limit`` entries: read it as a dict, add with ``keep``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def keep(self, key: K, value: V) -> V:
        """``value``, kept under ``key`` (the cache emptied first when full)."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
