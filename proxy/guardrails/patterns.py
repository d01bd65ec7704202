"""`regex`: block (or mask) queries matching any configured regular expression; compiled once at load."""

from __future__ import annotations

import re
from typing import Any

from .contract import ALLOW, Decision, GuardContext


def compile_patterns(patterns: Any) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """`patterns`: a list of regex strings or `{name, pattern}` mappings; names appear in block reasons."""
    if not isinstance(patterns, list) or not patterns:
        raise ValueError("patterns must be a non-empty list of regexes (strings or {name, pattern})")
    compiled = []
    for i, item in enumerate(patterns):
        if isinstance(item, dict) and set(item) <= {"name", "pattern"} and isinstance(item.get("pattern"), str):
            name, source = str(item.get("name") or f"pattern {i + 1}"), item["pattern"]
        elif isinstance(item, str):
            name, source = f"pattern {i + 1}", item
        else:
            raise ValueError(f"patterns[{i}] must be a regex string or {{name, pattern}}")
        try:
            compiled.append((name, re.compile(source)))
        except re.error as exc:
            raise ValueError(f"patterns[{i}] is not a valid regex: {exc}") from None
    return tuple(compiled)


class RegexGuardrail:
    def __init__(self, *, patterns: list[Any], on_flagged: str = "block", mask_with: str = "<REDACTED>") -> None:
        if on_flagged not in ("mask", "block"):
            raise ValueError("on_flagged must be 'mask' or 'block'")
        self.patterns = compile_patterns(patterns)
        self.block = on_flagged == "block"
        self.mask_with = mask_with

    def check(self, query: str, context: GuardContext) -> Decision:
        matched = [name for name, pattern in self.patterns if pattern.search(query)]
        if not matched:
            return ALLOW
        if self.block:
            return Decision("block", reason=f"the query matches a blocked pattern ({', '.join(matched)})",
                            entities=tuple(matched))
        for _, pattern in self.patterns:
            query = pattern.sub(self.mask_with, query)
        return Decision("mask", query=query, entities=tuple(matched))
