"""Budget durations ("30s", "5m", "1h", "1d", "2w", "30d", "1mo"): parsing, and moving a reset time forward.

Months are calendar months (Jan 31 + 1mo = Feb 28/29), as LiteLLM users expect of "1mo"; the rest are fixed
lengths of time.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

DURATION_PATTERN = r"^\s*0*(?:[1-9][0-9]{0,4}\s*(?:s|m|h|d|w)|[1-9][0-9]{0,3}\s*mo)\s*$"
"""Every duration we accept, as the admin API's OpenAPI schema states it: at most 99,999 of s/m/h/d/w
(99,999 weeks is ~1,900 years) and 9,999 months, so a reset time always fits a datetime."""
_PATTERN = re.compile(r"^\s*([0-9]+)\s*(mo|s|m|h|d|w)\s*$")
_CHECK = re.compile(DURATION_PATTERN)
_FIXED = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True, slots=True)
class Duration:
    """`count` units of `unit` (one of s, m, h, d, w, mo); `count` is positive."""

    count: int
    unit: str

    def after(self, moment: datetime) -> datetime:
        """`moment` plus this duration."""
        if self.unit == "mo":
            return _add_months(moment, self.count)
        return moment + timedelta(seconds=self.count * _FIXED[self.unit])

    def before(self, moment: datetime) -> datetime:
        """`moment` minus this duration."""
        if self.unit == "mo":
            return _add_months(moment, -self.count)
        return moment - timedelta(seconds=self.count * _FIXED[self.unit])

    def seconds(self) -> float:
        """Its length in seconds (a month: 30 days)."""
        return self.count * (30 * 86400 if self.unit == "mo" else _FIXED[self.unit])

    def next_after(self, start: datetime, now: datetime) -> datetime:
        """The first `start + k * self` (k >= 1) that is later than `now`."""
        if self.unit != "mo":
            step = timedelta(seconds=self.count * _FIXED[self.unit])
            periods = max(1, (now - start) // step + 1)
            return start + periods * step
        moment, months = start, 0
        while moment <= now:
            months += self.count
            moment = _add_months(start, months)  # from `start`, so day-of-month clamping does not drift
        return moment


def parse_duration(text: str) -> Duration:
    """Parse "30s", "5m", "1h", "1d", "2w", "30d" or "1mo"; ValueError otherwise."""
    match = _PATTERN.match(text) if _CHECK.fullmatch(text) else None
    if match is None:
        raise ValueError(
            f"invalid duration {text[:40]!r}: expected a positive number (at most 99999, or 9999 months) and one "
            "of s, m, h, d, w, mo"
        )
    return Duration(int(match.group(1)), match.group(2))


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)
