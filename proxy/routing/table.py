"""The routing table: each alias's deployments with their routing fields (`weight`, `rpm`, `tpm`, `order`).

Built once when the router is made, so the request path reads plain attributes instead of parsing
`litellm_params` per call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..providers import Deployment

ROUTING_FIELDS = ("weight", "rpm", "tpm", "order")


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

    @property
    def id(self) -> str:
        return self.deployment.id


@dataclass(frozen=True, slots=True)
class Group:
    """An alias's members, with their indexes grouped into priority tiers (lowest `order` first)."""

    alias: str
    members: tuple[Member, ...]
    tiers: tuple[tuple[int, ...], ...]


def routing_fields(params: Mapping[str, Any]) -> dict[str, Any]:
    """Validated routing fields of one deployment's `litellm_params`; raises ValueError naming the field."""
    fields: dict[str, Any] = {}
    for name, kind in (("rpm", int), ("tpm", int), ("order", int), ("weight", float)):
        value = params.get(name)
        if value is None:
            continue
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, got {value!r}") from None
        if isinstance(value, bool) or number < 0 or (name in ("rpm", "tpm", "order") and number < 1):
            raise ValueError(f"{name} must be {'>= 1' if kind is int else '>= 0'}, got {value!r}")
        fields[name] = number
    return fields


def member_of(deployment: Deployment, index: int) -> Member:
    fields = routing_fields(deployment.params)
    rpm, tpm = fields.get("rpm"), fields.get("tpm")
    weight = fields.get("weight", float(rpm) if rpm else 1.0)
    return Member(deployment, index, weight=weight, rpm=rpm, tpm=tpm, order=fields.get("order", math.inf))


def build_group(alias: str, deployments: Sequence[Deployment]) -> Group:
    members = tuple(member_of(d, i) for i, d in enumerate(deployments))
    orders = sorted({m.order for m in members})
    tiers = tuple(tuple(m.index for m in members if m.order == order) for order in orders)
    return Group(alias, members, tiers)


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
