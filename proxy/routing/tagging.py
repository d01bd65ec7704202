"""LiteLLM's tag-based routing (`router_settings.enable_tag_filtering`): which of an alias's deployments a
request's tags may reach.

A request with tags goes to the deployments whose `litellm_params.tags` match them (any one tag in common, or
with `tag_filtering_match_any: false` every one of them); when none match, to the deployments tagged `default`;
when there are none either, nowhere (LiteLLM's 401). A request without tags goes to the `default` deployments,
else to all of them. As in LiteLLM's current router, `!tag` excludes the deployments carrying `tag` and `&tag`
keeps only those carrying it; a plain tag that some deployment of the alias carries is never sent to `default`.
Fallback aliases are narrowed by the same tags. Built into the plan only when the setting is on, so the request
path of a proxy without it does no tag work at all.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import TagRoutingError
from .table import Group, Member

DEFAULT_TAG = "default"

CACHED = 512
"""Narrowed groups a plan keeps: its table never changes and most requests repeat a few tag sets (at most
32 tags of 256 characters each, so a flood of new ones holds a few MB at worst)."""


@dataclass(frozen=True, slots=True)
class TagRule:
    match_any: bool = True
    """LiteLLM's `tag_filtering_match_any`: one tag in common suffices (else every plain request tag is needed)."""
    _seen: dict[tuple[str, tuple[str, ...]], Group] = field(default_factory=dict, compare=False, repr=False)

    def narrow(self, group: Group, tags: Sequence[str]) -> Group:
        """`group` with its tiers limited to the members `tags` may reach (none at all: empty tiers)."""
        key = (group.alias, tuple(tags))
        found = self._seen.get(key)
        if found is None:
            if len(self._seen) >= CACHED:
                self._seen.clear()
            found = self._seen[key] = self._narrow(group, key[1])
        return found

    def _narrow(self, group: Group, tags: Sequence[str]) -> Group:
        members = group.members
        if not tags:
            return _keep(group, _defaults(members)) if any(DEFAULT_TAG in m.tags for m in members) else group
        required = frozenset(t[1:] for t in tags if t[:1] == "&" and len(t) > 1)
        excluded = frozenset(t[1:] for t in tags if t[:1] == "!" and len(t) > 1)
        plain = frozenset(t for t in tags if t[:1] not in ("&", "!"))
        allowed = [m for m in members if not (excluded and m.tags & excluded) and required <= m.tags]
        if not plain:  # only `&`/`!` constraints
            if not required and not excluded:  # lone markers: as untagged
                return _keep(group, _defaults(members)) if any(DEFAULT_TAG in m.tags for m in members) else group
            if not required:
                pool = [m for m in members if DEFAULT_TAG in m.tags] or members
                allowed = [m for m in pool if not m.tags & excluded]
            return _keep(group, [m.index for m in allowed])
        if self.match_any:
            chosen = [m.index for m in allowed if m.tags & plain]
        else:
            chosen = [m.index for m in allowed if m.tags and plain <= m.tags]
        if chosen:
            return _keep(group, chosen)
        if any(m.tags & plain for m in members):  # a tag this alias knows, but not with these constraints
            return _keep(group, ())
        return _keep(group, _defaults(allowed))


def _defaults(members: Sequence[Member]) -> list[int]:
    return [m.index for m in members if DEFAULT_TAG in m.tags]


class TagView(dict[str, Group]):
    """One request's groups: each alias narrowed to the request's tags when the route first reaches it."""

    __slots__ = ("groups", "rule", "tags")

    def __init__(self, groups: Mapping[str, Group], rule: TagRule, tags: Sequence[str]):
        super().__init__()
        self.groups, self.rule, self.tags = groups, rule, tags

    def __missing__(self, alias: str) -> Group:
        group = self[alias] = self.rule.narrow(self.groups[alias], self.tags)
        return group


def refused(alias: str, chain: Sequence[str], view: Mapping[str, Group], tags: Sequence[str]
            ) -> TagRoutingError | None:
    """LiteLLM's error when no alias of the chain has a deployment the tags may reach (else None)."""
    if any(view[target].size for target in chain):
        return None
    return TagRoutingError(f"Not allowed to access model due to tags configuration. Passed model={alias} "
                           f"and tags={list(tags)!r}")


def _keep(group: Group, chosen: Collection[int]) -> Group:
    keep = set(chosen)
    tiers = tuple(kept for tier in group.tiers if (kept := tuple(i for i in tier if i in keep)))
    return Group(group.alias, group.members, tiers, sum(map(len, tiers)))


def answer_scope(group: Group, rule: TagRule | None, tags: Sequence[str]) -> str | None:
    """What a whole cached answer of `group` is kept under for a request with `tags`: the alias, plus with tag
    filtering the deployments the tags reach (other tags may reach another model, whose answer differs). None
    when they reach none: no cached answer may be served, routing refuses or tries the fallbacks."""
    if rule is None:
        return group.alias
    narrowed = rule.narrow(group, tags)
    if not narrowed.size:
        return None
    reached = sorted(group.members[i].deployment.id for tier in narrowed.tiers for i in tier)
    return f"{group.alias}\x00{','.join(reached)}"
