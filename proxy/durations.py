"""LiteLLM-style durations: "30s", "5m", "1h", "1d", "30d", "1mo"."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w|mo)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "mo": 30 * 86400}


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text or "")
    if not match:
        raise ValueError(f"invalid duration {text!r}; use e.g. 30s, 5m, 1h, 1d, 30d, 1mo")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def after(start: datetime, text: str) -> datetime:
    return start + parse_duration(text)
