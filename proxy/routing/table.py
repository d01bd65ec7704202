"""The routing table: each alias's deployments with their routing fields (`weight`, `rpm`, `tpm`, `order`,
`max_parallel_requests`, `max_retries`, `tags`), and the names (`model_group_alias`) that stand for an alias.

Built once when the router is made, so the request path reads plain attributes instead of parsing
`litellm_params` per call.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..providers import Deployment
from ..tags import deployment_tags

ROUTING_FIELDS = ("weight", "rpm", "tpm", "order", "max_parallel_requests", "max_retries")
_COUNTS = ("rpm", "tpm", "order", "max_parallel_requests")


@dataclass(frozen=True, slots=True)
class Member:
    """One deployment of an alias, as the router sees it."""

    deployment: Deployment
    index: int
    """Position in its group; stats lists are indexed the same way."""
    weight: float = 1.0
    """simple-shuffle share: `weight`, else `rpm`, else 1."""
    rpm: int | None = None
    tpm: int | None = None
    order: float = math.inf
    """Priority tier (1 first); deployments without `order` come after every ordered one."""
    max_parallel: int | None = None
    """`max_parallel_requests`: calls in flight to it at most (from this process, plus other replicas')."""
    max_retries: int | None = None
    """`max_retries`: times it may be tried again within one request after failing (None: the alias's budget)."""
    tags: frozenset[str] = frozenset()
    """`litellm_params.tags`, for tag-based routing (tagging.py)."""

    @property
    def id(self) -> str:
        return self.deployment.id


@dataclass(frozen=True, slots=True)
class Group:
    """An alias's members, with their indexes grouped into priority tiers (lowest `order` first)."""

    alias: str
    members: tuple[Member, ...]
    tiers: tuple[tuple[int, ...], ...]
    size: int
    """Members the tiers hold: all of them, or fewer in a group narrowed to a request's tags (tagging.py)."""


def routing_fields(params: Mapping[str, Any]) -> dict[str, Any]:
    """Validated routing fields of one deployment's `litellm_params`; raises ValueError naming the field."""
    fields: dict[str, Any] = {}
    for name, kind in (("rpm", int), ("tpm", int), ("order", int), ("max_parallel_requests", int),
                       ("weight", float), ("max_retries", int)):
        value = params.get(name)
        if value is None:
            continue
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, got {value!r}") from None
        if isinstance(value, bool) or number < 0 or (name in _COUNTS and number < 1):
            raise ValueError(f"{name} must be {'>= 1' if kind is int else '>= 0'}, got {value!r}")
        fields[name] = number
    return fields


def member_of(deployment: Deployment, index: int) -> Member:
    fields = routing_fields(deployment.params)
    rpm, tpm = fields.get("rpm"), fields.get("tpm")
    weight = fields.get("weight", float(rpm) if rpm else 1.0)
    return Member(deployment, index, weight=weight, rpm=rpm, tpm=tpm, order=fields.get("order", math.inf),
                  max_parallel=fields.get("max_parallel_requests"), max_retries=fields.get("max_retries"),
                  tags=frozenset(deployment_tags(deployment.params)))


def build_group(alias: str, deployments: Sequence[Deployment]) -> Group:
    members = tuple(member_of(d, i) for i, d in enumerate(deployments))
    orders = sorted({m.order for m in members})
    tiers = tuple(tuple(m.index for m in members if m.order == order) for order in orders)
    return Group(alias, members, tiers, len(members))


def parse_fallbacks(items: Iterable[Mapping[str, Sequence[str]]] | None) -> dict[str, tuple[str, ...]]:
    """LiteLLM's `[{"alias": ["fallback", ...]}, ...]` as {alias: (fallback, ...)}."""
    table: dict[str, list[str]] = {}
    for item in items or []:
        for alias, targets in item.items():
            if isinstance(targets, str):
                targets = [targets]
            known = table.setdefault(alias, [])
            known.extend(t for t in dict.fromkeys(targets) if t not in known)
    return {alias: tuple(targets) for alias, targets in table.items()}


def repeated_ids(ids: Iterable[str]) -> list[str]:
    """Deployment ids that appear more than once (each deployment's state is keyed by its id)."""
    return sorted(i for i, n in Counter(ids).items() if n > 1)


def group_alias_target(alias: str, value: Any, groups: Collection[str]) -> tuple[str, bool]:
    """One `model_group_alias` entry (`"group"` or `{"model": "group", "hidden": true}`) as (group, hidden).

    ValueError when the entry is malformed, names no alias of the model list, or hides a real alias.
    """
    if isinstance(value, Mapping):
        unknown = set(value) - {"model", "hidden"}
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; use 'model' and 'hidden'")
        target, hidden = value.get("model"), value.get("hidden", False)
        if not isinstance(hidden, bool):
            raise ValueError(f"hidden must be true or false, got {hidden!r}")
    else:
        target, hidden = value, False
    if not isinstance(target, str) or not target:
        raise ValueError("give the model_name it stands for, as a string or {model: ..., hidden: ...}")
    if alias in groups:
        raise ValueError(f"'{alias}' is already a model_name in the model_list")
    if target not in groups:
        raise ValueError(f"'{target}' is not a model_name in the model_list")
    return target, hidden


def build_table(aliases: Mapping[str, Sequence[Deployment]], group_aliases: Mapping[str, Any] | None
                ) -> tuple[dict[str, tuple[Deployment, ...]], dict[str, Group], frozenset[str]]:
    """({name: deployments}, {name: Group}, hidden names) for the router; a `model_group_alias` name gets its
    alias's deployments and the very same Group (one state, one view). ValueError naming the problem."""
    repeated = repeated_ids(d.id for deps in aliases.values() for d in deps)
    if repeated:
        raise ValueError(f"deployment ids must be unique; used more than once: {', '.join(repeated)}")
    table = {alias: tuple(deps) for alias, deps in aliases.items()}
    groups: dict[str, Group] = {}
    for alias, deps in table.items():
        try:
            groups[alias] = build_group(alias, deps)
        except ValueError as exc:
            raise ValueError(f"model '{alias}': {exc}") from None
    real, hidden = tuple(table), set()
    for name, value in (group_aliases or {}).items():
        try:
            target, hide = group_alias_target(name, value, real)
        except ValueError as exc:
            raise ValueError(f"model_group_alias '{name}': {exc}") from None
        table[name], groups[name] = table[target], groups[target]
        if hide:
            hidden.add(name)
    return table, groups, frozenset(hidden)
