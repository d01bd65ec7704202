"""Per-deployment routing state (cooldowns, in-flight calls, usage this minute, latency), held in this process.

`RedisState` (redis_state.py) shares the same numbers between replicas and keeps one of these as its
always-current fallback. Times are wall-clock seconds (`time.time()`), so replicas can compare them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .table import Group, Member

LATENCY_WEIGHT = 0.3
"""How much a new latency sample moves the moving average."""


@dataclass(slots=True)
class Stats:
    """What the strategies and the availability check read about one deployment."""

    cool_until: float = 0.0
    busy: int = 0
    """Calls in flight from this process."""
    others: int = 0
    """Calls in flight from other replicas (shared state only), as last read."""
    minute: int = 0
    used: int = 0
    """Requests started in `minute`."""
    tokens: int = 0
    """Tokens reported in `minute`."""
    latency: float | None = None
    """Moving average of successful call durations, seconds."""
    latency_at: float = 0.0
    fails: int = 0
    fails_since: float = 0.0

    def used_in(self, minute: int) -> int:
        return self.used if self.minute == minute else 0

    def tokens_in(self, minute: int) -> int:
        return self.tokens if self.minute == minute else 0

    def blend_latency(self, sample: float, now: float, ttl: float) -> float:
        latency = self.latency
        if latency is not None and now - self.latency_at <= ttl:
            sample = latency * (1 - LATENCY_WEIGHT) + sample * LATENCY_WEIGHT
        self.latency = sample
        self.latency_at = now
        return self.latency


class State(Protocol):
    """Where routing numbers live; `read` is the only call the request path awaits for every request."""

    shared: bool

    async def read(self, group: Group, now: float) -> Sequence[Stats]: ...

    async def reserve(self, member: Member, now: float) -> bool:
        """Count one request against `member.rpm` atomically; False when the deployment is at its limit."""

    def begin(self, member: Member, now: float, counted: bool) -> None:
        """A call starts (in-flight +1; usage +1 unless `reserve` already counted it)."""

    def end(self, member: Member, now: float, latency: float | None, tokens: int | None) -> None: ...

    async def count_failure(self, member_id: str, now: float, window: float) -> int:
        """Record one failure; the number of failures in the current window."""

    def cool(self, member_id: str, until: float, now: float) -> None: ...

    def recover(self, member_id: str) -> None:
        """Forget cooldown and failures (a health check succeeded)."""

    def cooled_until(self, member_id: str) -> float: ...

    async def aclose(self) -> None: ...


class LocalState:
    """In-process state: plain counters behind a lock (the SDK may route from two threads at once)."""

    shared = False

    def __init__(self, latency_ttl: float = 60.0):
        self.latency_ttl = latency_ttl
        self._stats: dict[str, Stats] = {}
        self._lists: dict[str, list[Stats]] = {}
        self._lock = threading.Lock()

    def stats(self, member_id: str) -> Stats:
        found = self._stats.get(member_id)
        if found is None:
            found = self._stats.setdefault(member_id, Stats())
        return found

    def view(self, group: Group) -> list[Stats]:
        """The live stats of a group's members, in member order (the same list every time)."""
        found = self._lists.get(group.alias)
        if found is None or len(found) != len(group.members):
            found = self._lists[group.alias] = [self.stats(m.id) for m in group.members]
        return found

    async def read(self, group: Group, now: float) -> Sequence[Stats]:
        return self.view(group)

    def try_reserve(self, member: Member, now: float) -> bool:
        minute = int(now // 60)
        with self._lock:
            stats = self.stats(member.id)
            if stats.minute != minute:
                stats.minute, stats.used, stats.tokens = minute, 0, 0
            if member.rpm is not None and stats.used >= member.rpm:
                return False
            stats.used += 1
            return True

    async def reserve(self, member: Member, now: float) -> bool:
        return self.try_reserve(member, now)

    def begin(self, member: Member, now: float, counted: bool) -> None:
        with self._lock:
            stats = self.stats(member.id)
            stats.busy += 1
            if not counted:
                minute = int(now // 60)
                if stats.minute != minute:
                    stats.minute, stats.used, stats.tokens = minute, 0, 0
                stats.used += 1

    def end(self, member: Member, now: float, latency: float | None, tokens: int | None) -> None:
        with self._lock:
            stats = self.stats(member.id)
            stats.busy = max(stats.busy - 1, 0)
            if latency is not None:
                stats.blend_latency(latency, now, self.latency_ttl)
            if tokens and stats.minute == int(now // 60):
                stats.tokens += tokens

    def set_used(self, member_id: str, now: float, used: int) -> None:
        with self._lock:
            stats = self.stats(member_id)
            stats.minute, stats.used = int(now // 60), used

    def merge_shared(self, member_id: str, now: float, *, cool_until: float, used: int | None,
                     tokens: int | None, latency: float | None, others: int | None) -> None:
        """Fold numbers read from shared state into this process's copy (which already counts our own calls)."""
        minute = int(now // 60)
        with self._lock:
            stats = self.stats(member_id)
            stats.cool_until = max(stats.cool_until, cool_until)
            if used is not None:
                if stats.minute != minute:
                    stats.minute, stats.used, stats.tokens = minute, 0, 0
                stats.used = max(stats.used, used)
                stats.tokens = max(stats.tokens, tokens or 0)
            if latency is not None:
                stats.latency, stats.latency_at = latency, now
            if others is not None:
                stats.others = others

    def count_failure_now(self, member_id: str, now: float, window: float) -> int:
        with self._lock:
            stats = self.stats(member_id)
            if now - stats.fails_since > window:
                stats.fails, stats.fails_since = 0, now
            stats.fails += 1
            return stats.fails

    async def count_failure(self, member_id: str, now: float, window: float) -> int:
        return self.count_failure_now(member_id, now, window)

    def cool(self, member_id: str, until: float, now: float) -> None:
        with self._lock:
            stats = self.stats(member_id)
            stats.cool_until = max(stats.cool_until, until)
            stats.fails = 0

    def recover(self, member_id: str) -> None:
        with self._lock:
            stats = self.stats(member_id)
            stats.cool_until, stats.fails = 0.0, 0

    def cooled_until(self, member_id: str) -> float:
        found = self._stats.get(member_id)
        return found.cool_until if found is not None else 0.0

    async def aclose(self) -> None:
        return None
