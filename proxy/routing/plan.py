"""`Plan`: everything the router derives from the config (the table, fallbacks, strategy, retry policy, tag rule).

One immutable object, so a config reload swaps it in a single assignment: a request takes the plan once
when it starts and finishes on it, while the next request sees the new one. Router state (cooldowns,
latency, rpm counts) lives outside the plan, keyed by deployment id, so it carries over a reload for every
deployment whose id did not change.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..providers import Deployment
from .picker import Strategy, make_strategy
from .policy import RetryPolicy
from .table import Group, build_table, parse_fallbacks
from .tagging import TagRule

log = logging.getLogger("proxy.routing")


@dataclass(frozen=True, slots=True)
class Plan:
    aliases: dict[str, tuple[Deployment, ...]]
    """Every name a caller may ask for (model_group_alias names included) → its deployments."""
    groups: dict[str, Group]
    hidden_aliases: frozenset[str]
    fallbacks: dict[str, tuple[str, ...]]
    default_fallbacks: list[str]
    strategy: Strategy
    routing_strategy: str
    policy: RetryPolicy
    enforce: bool
    """Check our own rpm/tpm before a call (a limit-aware strategy, or `enable_pre_call_checks`)."""
    limits: bool
    """Any own limit to check per candidate (else the check costs nothing at all)."""
    needs: frozenset[str]
    """What shared (Redis) state must track for this plan's strategy and limits."""
    tag_rule: TagRule | None = None
    """`enable_tag_filtering`: how a request's tags narrow each alias (None: tags do not route)."""

    @property
    def num_retries(self) -> int:
        return self.policy.num_retries

    def chain(self, alias: str, extra_fallbacks: Sequence[str] | None) -> list[str]:
        """`alias`, then the request's fallbacks, the config's, the defaults: each known alias once."""
        chain = [alias]
        for candidate in (*(extra_fallbacks or ()), *self.fallbacks.get(alias, ()), *self.default_fallbacks):
            if candidate not in chain and candidate in self.groups:
                chain.append(candidate)
        return chain


def make_plan(table: Mapping[str, Sequence[Deployment]], *, model_group_alias: Any = None,
              fallbacks: list[dict[str, list[str]]] | None = None, default_fallbacks: list[str] | None = None,
              num_retries: int = 2, routing_strategy: str = "simple-shuffle",
              routing_strategy_args: Mapping[str, Any] | None = None, retry_after: float = 0.05,
              max_retry_after: float = 2.0, timeout: float | None = None,
              enable_pre_call_checks: bool = False, enable_tag_filtering: bool = False,
              tag_filtering_match_any: bool = True) -> Plan:
    aliases, groups, hidden = build_table({a: list(d) for a, d in table.items()}, model_group_alias)
    parsed = parse_fallbacks(fallbacks)
    for name, group in groups.items():  # a model_group_alias name falls back like its alias
        if name != group.alias and name not in parsed and group.alias in parsed:
            parsed[name] = parsed[group.alias]
    defaults = list(default_fallbacks or [])
    unknown = {t for targets in parsed.values() for t in targets} | set(defaults)
    unknown -= aliases.keys()
    if unknown:
        log.warning("fallback model(s) %s are not in the model list and will be skipped", ", ".join(sorted(unknown)))
    strategy = make_strategy(routing_strategy, routing_strategy_args)
    enforce = strategy.enforces_limits or enable_pre_call_checks
    members = [m for g in groups.values() for m in g.members]
    parallel = any(m.max_parallel for m in members)
    needs = set(strategy.needs)
    if enforce and any(m.rpm or m.tpm for m in members):
        needs.add("usage")
    if parallel:
        needs.add("busy")  # other replicas' calls in flight count toward max_parallel_requests
    return Plan(aliases=aliases, groups=groups, hidden_aliases=frozenset(hidden), fallbacks=parsed,
                default_fallbacks=defaults, strategy=strategy, routing_strategy=routing_strategy,
                policy=RetryPolicy(num_retries, retry_after, max_retry_after, timeout), enforce=enforce,
                limits=enforce or parallel, needs=frozenset(needs),
                tag_rule=TagRule(tag_filtering_match_any) if enable_tag_filtering else None)
