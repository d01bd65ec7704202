"""`TtlCache`: the one bounded cache of the request path (keys, unknown keys, end users).

An entry is *fresh* for `ttl` seconds after it was stored and *stale* for `max_stale` seconds more: a stale
entry is what the caller may serve while the database cannot say anything newer. Eviction is LRU by use,
not by insertion, so a flood of one-off look-ups pushes out other one-off look-ups, never an entry in use.
The clock is injected so tests step through the boundaries instead of sleeping to them.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    __slots__ = ("_clock", "_entries", "_max_entries", "_max_stale", "ttl")

    def __init__(self, ttl: float, max_entries: int, *, max_stale: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self.ttl = ttl
        self._max_entries = max_entries
        self._max_stale = max_stale
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        """key → (stored at, value); the last entry is the most recently used."""

    def get(self, key: K) -> tuple[V, bool] | None:
        """(value, fresh) for an entry within ttl + max_stale, else None (an older entry is dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        age = self._clock() - entry[0]
        if age >= self.ttl + self._max_stale:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1], age < self.ttl

    def put(self, key: K, value: V) -> None:
        self._entries[key] = (self._clock(), value)
        self._entries.move_to_end(key)
        if len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)
