"""`banned_keywords`: block queries containing any listed word or phrase (case-insensitive, whole words)."""

from __future__ import annotations

import re

from .contract import ALLOW, Decision, GuardContext


def keyword_pattern(keywords: list[str]) -> re.Pattern[str]:
    """One alternation for all keywords, matched only where no word character touches either end."""
    if not isinstance(keywords, list) or not keywords or not all(isinstance(k, str) and k.strip() for k in keywords):
        raise ValueError("keywords must be a non-empty list of non-empty strings")
    words = sorted({k.strip() for k in keywords}, key=len, reverse=True)
    alternation = "|".join(r"\s+".join(re.escape(part) for part in word.split()) for word in words)
    return re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)


class BannedKeywords:
    def __init__(self, *, keywords: list[str]) -> None:
        self.pattern = keyword_pattern(keywords)

    def check(self, query: str, context: GuardContext) -> Decision:
        if self.pattern.search(query) is None:
            return ALLOW
        return Decision("block", reason="the query contains a banned keyword")
