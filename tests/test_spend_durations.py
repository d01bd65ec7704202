"""Budget durations: the spellings LiteLLM users write, calendar months, catching up after downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from proxy.spend.durations import Duration, parse_duration

T0 = datetime(2025, 1, 31, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "after"),
    [
        ("30s", T0 + timedelta(seconds=30)),
        ("5m", T0 + timedelta(minutes=5)),
        ("1h", T0 + timedelta(hours=1)),
        ("1d", T0 + timedelta(days=1)),
        ("2w", T0 + timedelta(weeks=2)),
        ("30d", T0 + timedelta(days=30)),
        ("1mo", datetime(2025, 2, 28, 12, tzinfo=UTC)),
        ("13mo", datetime(2026, 2, 28, 12, tzinfo=UTC)),
        (" 3mo ", datetime(2025, 4, 30, 12, tzinfo=UTC)),
    ],
)
def test_durations_move_a_moment_forward(text: str, after: datetime) -> None:
    assert parse_duration(text).after(T0) == after


@pytest.mark.parametrize("text", ["", "30", "d", "0d", "-1d", "1y", "1 month", "1.5h", "mo1"])
def test_invalid_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_the_next_reset_skips_whole_periods_missed_while_down() -> None:
    daily = Duration(1, "d")
    assert daily.next_after(T0, T0) == T0 + timedelta(days=1)
    assert daily.next_after(T0, T0 + timedelta(days=5, hours=1)) == T0 + timedelta(days=6)
    assert daily.next_after(T0, T0 + timedelta(days=5)) == T0 + timedelta(days=6)


def test_monthly_resets_keep_the_day_of_month_after_a_short_month() -> None:
    monthly = parse_duration("1mo")
    assert monthly.next_after(T0, datetime(2025, 3, 1, tzinfo=UTC)) == datetime(2025, 3, 31, 12, tzinfo=UTC)
