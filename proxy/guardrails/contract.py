"""What every guardrail shares: the context it sees, the decision it returns, the interface it implements.

A guardrail looks at the query only (never the documents) and answers allow, block or mask (a rewritten
query that replaces the original before anything leaves the proxy). Decisions name entity *types* and
reasons, never the matched text, so they can be logged and stored.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Action = Literal["allow", "block", "mask"]


@dataclass(frozen=True, slots=True)
class GuardContext:
    """Who is asking, for guardrails that decide per caller (webhooks, custom classes)."""

    model: str = ""
    key_alias: str | None = None
    user_id: str | None = None
    end_user: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """`allow`; `block` with a `reason` shown to the caller; `mask` with the rewritten `query`.

    `reason` must not quote the query. `entities` lists what was found by type (e.g. "EMAIL").
    """

    action: Action = "allow"
    query: str | None = None
    reason: str = ""
    entities: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.action not in ("allow", "block", "mask"):
            raise ValueError(f"a guardrail decision is allow, block or mask, not {self.action!r}")
        if self.action == "mask" and not isinstance(self.query, str):
            raise ValueError("a mask decision carries the rewritten query")


ALLOW = Decision()


class Guardrail(Protocol):
    """The whole interface: look at the query, return a Decision (sync or async)."""

    def check(self, query: str, context: GuardContext) -> Decision | Awaitable[Decision]: ...
