"""Routing strategies (LiteLLM's names): pick one deployment among the available candidates.

A strategy is a pure function of the candidates, their stats and an injected `random.Random`, so a
seeded router makes the same choices every run. Which candidates are available (cooldowns, rpm limits,
priority tiers) is decided before a strategy is asked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from random import Random
from typing import Any, ClassVar

from .state import Stats
from .table import Member


class Strategy:
    name: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset()
    """Stats the strategy reads beyond cooldowns: "busy", "usage", "latency" (shared state reads only these)."""
    enforces_limits: ClassVar[bool] = False
    """Whether deployments at their `rpm`/`tpm` are skipped (also on with `enable_pre_call_checks`)."""
    latency_ttl: float = 60.0

    def pick(self, candidates: Sequence[int], members: Sequence[Member], stats: Sequence[Stats], rng: Random,
             now: float) -> int:
        raise NotImplementedError


def _fewest(candidates: Sequence[int], value: Sequence[float], rng: Random) -> int:
    best = min(value)
    ties = [c for c, v in zip(candidates, value, strict=True) if v == best]
    return ties[0] if len(ties) == 1 else rng.choice(ties)


class SimpleShuffle(Strategy):
    """Random, weighted by `weight` (else `rpm`, else equal)."""

    name = "simple-shuffle"

    def pick(self, candidates, members, stats, rng, now):
        if len(candidates) == 1:
            return candidates[0]
        weights = [members[c].weight for c in candidates]
        if sum(weights) <= 0:
            return rng.choice(candidates)
        return rng.choices(candidates, weights=weights)[0]


class LeastBusy(Strategy):
    """Fewest calls in flight (here, plus elsewhere when state is shared); ties at random."""

    name = "least-busy"
    needs = frozenset({"busy"})

    def pick(self, candidates, members, stats, rng, now):
        if len(candidates) == 1:
            return candidates[0]
        return _fewest(candidates, [stats[c].busy + stats[c].others for c in candidates], rng)


class LowestLatency(Strategy):
    """Lowest recent latency, exploring so a slow (or recovered) deployment is measured again.

    With probability `exploration` any candidate is picked; a candidate without a fresh measurement
    (none yet, or older than `ttl` seconds) is picked before measured ones; otherwise one at random
    among those within `lowest_latency_buffer` (a fraction) of the lowest.
    """

    name = "latency-based-routing"
    needs = frozenset({"latency"})

    def __init__(self, ttl: float = 60.0, lowest_latency_buffer: float = 0.0, exploration: float = 0.1):
        self.latency_ttl = float(ttl)
        self.buffer = float(lowest_latency_buffer)
        self.exploration = float(exploration)

    def pick(self, candidates, members, stats, rng, now):
        if len(candidates) == 1:
            return candidates[0]
        if self.exploration and rng.random() < self.exploration:
            return rng.choice(candidates)
        ttl = self.latency_ttl
        measured: list[tuple[int, float]] = []
        unmeasured: list[int] = []
        for c in candidates:
            s = stats[c]
            if s.latency is None or now - s.latency_at > ttl:
                unmeasured.append(c)
            else:
                measured.append((c, s.latency))
        if unmeasured:
            return unmeasured[0] if len(unmeasured) == 1 else rng.choice(unmeasured)
        best = min(latency for _, latency in measured)
        close = [c for c, latency in measured if latency <= best * (1 + self.buffer)]
        return close[0] if len(close) == 1 else rng.choice(close)


class LeastUsed(Strategy):
    """Fewest requests this minute; deployments at their `rpm` (or `tpm`) are skipped before picking."""

    name = "usage-based-routing"
    needs = frozenset({"usage"})
    enforces_limits = True

    def pick(self, candidates, members, stats, rng, now):
        if len(candidates) == 1:
            return candidates[0]
        minute = int(now // 60)
        return _fewest(candidates, [stats[c].used_in(minute) for c in candidates], rng)


STRATEGIES: dict[str, type[Strategy]] = {
    "simple-shuffle": SimpleShuffle,
    "least-busy": LeastBusy,
    "latency-based-routing": LowestLatency,
    "usage-based-routing": LeastUsed,
    "usage-based-routing-v2": LeastUsed,
}
STRATEGY_ARGS: dict[str, frozenset[str]] = {
    "latency-based-routing": frozenset({"ttl", "lowest_latency_buffer", "exploration"}),
}


def make_strategy(name: str, args: Mapping[str, Any] | None = None) -> Strategy:
    """The strategy called `name`; ValueError naming the known strategies (or arguments) otherwise."""
    kind = STRATEGIES.get(name)
    if kind is None:
        raise ValueError(f"unknown routing_strategy '{name}'; use one of: {', '.join(STRATEGIES)}")
    args = dict(args or {})
    known = STRATEGY_ARGS.get(name, frozenset())
    unknown = set(args) - known
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise ValueError(f"unknown routing_strategy_args for '{name}': {', '.join(sorted(unknown))} "
                         f"(allowed: {allowed})")
    return kind(**args)
