"""Per-process counters: request windows, parallel slots and the budget ledger.

Everything here runs on the event loop without awaiting, so checking every limit of a call and taking
them is one atomic step: 100 concurrent calls against `rpm_limit: 10` admit exactly 10. A `tpm_limit` is
checked against the tokens its calls used in the current wall-clock minute; a call's tokens are known only
when it ends, so calls already in flight when the minute fills up still finish.

The budget ledger holds, per counter, the spend of the current period as this process knows it (the
database's figure when first seen, plus every cost settled here since, merged upward with each fresher
database figure) and the estimates reserved by calls in flight. A call is admitted while spent +
reserved is below the budget, so a burst can overshoot by at most the one call admitted last.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from .rules import RPM_WINDOW_SECONDS, Limit, seconds_to_next_minute, tpm_minute


@dataclass(slots=True)
class Refused:
    limit: Limit
    retry_after: float | None = None
    used: Decimal | None = None


@dataclass(slots=True)
class _Budget:
    period: datetime | None
    spent: Decimal
    reserved: Decimal = Decimal(0)
    touched: float = 0.0


class LocalCounters:
    def __init__(self) -> None:
        self._windows: dict[str, list[float]] = {}  # counter → [count, window end (monotonic)]
        self._parallel: dict[str, int] = {}
        self._budgets: dict[str, _Budget] = {}
        self._tokens: dict[str, tuple[int, int]] = {}  # counter → (minute, tokens used in it)

    # admission ------------------------------------------------------------------------------------

    def admit(self, limits: list[Limit], estimate: Decimal, now: datetime) -> Refused | None:
        """Check every limit, then take them all (or none)."""
        clock = time.monotonic()
        for limit in limits:
            if limit.kind == "rpm":
                window = self._windows.get(limit.counter)
                if window is not None and window[1] > clock and window[0] >= limit.limit:
                    return Refused(limit, retry_after=window[1] - clock)
            elif limit.kind == "parallel":
                if self._parallel.get(limit.counter, 0) >= limit.limit:
                    return Refused(limit)
            elif limit.kind == "tpm":
                tokens = self.tokens_used(limit.counter, now)
                if tokens >= limit.limit:
                    return Refused(limit, retry_after=seconds_to_next_minute(now), used=Decimal(tokens))
            else:
                entry = self.budget(limit, now)
                used = entry.spent + entry.reserved
                if used >= limit.limit:
                    return Refused(limit, used=used)
        self.take(limits, estimate, now, clock)
        return None

    def take(self, limits: list[Limit], estimate: Decimal, now: datetime, clock: float | None = None) -> None:
        """Count the call against `limits` without checking (also used to mirror a shared admission)."""
        clock = time.monotonic() if clock is None else clock
        for limit in limits:
            if limit.kind == "rpm":
                window = self._windows.get(limit.counter)
                if window is None or window[1] <= clock:
                    self._windows[limit.counter] = [1, clock + RPM_WINDOW_SECONDS]
                else:
                    window[0] += 1
            elif limit.kind == "parallel":
                self._parallel[limit.counter] = self._parallel.get(limit.counter, 0) + 1
            elif limit.kind == "budget":
                entry = self.budget(limit, now)
                entry.reserved += estimate
                entry.touched = clock

    def release(self, parallel: tuple[str, ...], budgets: tuple[tuple[str, datetime | None], ...],
                estimate: Decimal, cost: Decimal) -> None:
        """Free the call's parallel slots and settle its reservation with what it actually cost."""
        for counter in parallel:
            left = self._parallel.get(counter, 0) - 1
            if left > 0:
                self._parallel[counter] = left
            else:
                self._parallel.pop(counter, None)
        for counter, period in budgets:
            entry = self._budgets.get(counter)
            if entry is None:
                continue
            entry.reserved = max(Decimal(0), entry.reserved - estimate)
            if entry.period == period:  # a cost from a period that has ended does not count in the new one
                entry.spent += cost

    # tokens per minute ---------------------------------------------------------------------------

    def add_tokens(self, counters: tuple[str, ...], tokens: int, now: datetime) -> None:
        """Count a finished call's tokens in the current minute of each of its `tpm_limit` counters."""
        minute = tpm_minute(now)
        for counter in counters:
            self._tokens[counter] = (minute, self.tokens_used(counter, now) + tokens)

    def tokens_used(self, counter: str, now: datetime) -> int:
        entry = self._tokens.get(counter)
        return entry[1] if entry is not None and entry[0] == tpm_minute(now) else 0

    # budgets --------------------------------------------------------------------------------------

    def budget(self, limit: Limit, now: datetime) -> _Budget:
        """The ledger entry for a budget limit, rolled into the limit's current period."""
        entry = self._budgets.get(limit.counter)
        if entry is None:
            entry = self._budgets[limit.counter] = _Budget(limit.period_end, limit.seed, touched=time.monotonic())
        elif entry.period != limit.period_end:
            ended = entry.period is not None and entry.period <= now
            entry.spent = limit.seed if ended else max(entry.spent, limit.seed)  # rollover, or an admin change
            entry.period = limit.period_end
        elif limit.seed > entry.spent:
            entry.spent = limit.seed  # the database knows of spend we did not see (another replica)
        return entry

    def spent(self, counter: str, period: datetime | None) -> Decimal | None:
        entry = self._budgets.get(counter)
        if entry is None or entry.period != period:
            return None
        return entry.spent

    def prune(self, idle_seconds: float = 600.0) -> None:
        """Forget expired windows, past minutes' token counts and idle budget entries with nothing in flight."""
        clock = time.monotonic()
        for counter in [c for c, w in self._windows.items() if w[1] <= clock]:
            del self._windows[counter]
        minute = tpm_minute(datetime.now(UTC))
        for counter in [c for c, (m, _) in self._tokens.items() if m < minute]:
            del self._tokens[counter]
        for counter in [c for c, b in self._budgets.items()
                        if not b.reserved and clock - b.touched > idle_seconds]:
            del self._budgets[counter]
