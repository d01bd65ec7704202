"""`max_length`: block queries longer than `max_chars` characters or `max_tokens` estimated tokens."""

from __future__ import annotations

from .contract import ALLOW, Decision, GuardContext


def estimated_tokens(text: str) -> int:
    """About four characters a token, the estimate pricing uses when a provider reports none."""
    return len(text) // 4 + 1


class MaxLength:
    def __init__(self, *, max_chars: int | None = None, max_tokens: int | None = None) -> None:
        for name, value in (("max_chars", max_chars), ("max_tokens", max_tokens)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer")
        if max_chars is None and max_tokens is None:
            raise ValueError("set max_chars and/or max_tokens")
        self.max_chars = max_chars
        self.max_tokens = max_tokens

    def check(self, query: str, context: GuardContext) -> Decision:
        if self.max_chars is not None and len(query) > self.max_chars:
            return Decision("block", reason=f"the query is longer than {self.max_chars} characters")
        if self.max_tokens is not None and estimated_tokens(query) > self.max_tokens:
            return Decision("block", reason=f"the query is longer than {self.max_tokens} tokens (estimated)")
        return ALLOW
