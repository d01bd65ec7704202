"""`repeat`: a background step every few seconds that never dies of a failure and logs one line per outage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


async def repeat(interval: float, step: Callable[[], Awaitable[object]], log: logging.Logger, *,
                 failing: str, recovered: str, first: float | None = None) -> None:
    """`await step()` every `interval` seconds forever (the first time after `first` seconds, default
    `interval`). The first failure logs `failing` (with `%s` for the reason), the next success `recovered`;
    failures in between are silent (the outage is already told)."""
    failed = False
    delay = interval if first is None else first
    while True:
        await asyncio.sleep(delay)
        delay = interval
        try:
            await step()
        except Exception as exc:  # noqa: BLE001 - keep what we have; try again next time
            if not failed:
                log.warning(failing, getattr(exc, "message", None) or type(exc).__name__)
            failed = True
        else:
            if failed:
                log.warning(recovered)
            failed = False
