"""Run a store method off the event loop, and turn store records into JSON-ready dicts."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from ..errors import InvalidRequestError, ProxyError, StoreUnavailableError

T = TypeVar("T")


ADMIN_DEADLINE = 15.0
"""Seconds an admin or UI request waits for one store call (PostgreSQL's statement_timeout is 10 s); then 503.
The call may still finish in its thread; the request does not wait for it."""


async def in_thread(fn: Callable[..., T], *args: Any, deadline: float = ADMIN_DEADLINE, **kwargs: Any) -> T:
    try:
        return await asyncio.wait_for(asyncio.to_thread(fn, *args, **kwargs), deadline)
    except TimeoutError:
        raise StoreUnavailableError(f"the database did not answer within {deadline:g}s") from None
    except ProxyError:
        raise
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None
    except Exception as exc:
        if type(exc).__name__ == "IntegrityError":
            raise InvalidRequestError("a record with that unique value (e.g. key_alias) already exists") from None
        raise StoreUnavailableError() from None


def as_dict(record: Any) -> dict[str, Any]:
    """A store record as JSON-ready fields; money becomes a float, as LiteLLM's admin API returns it."""
    if record is None:
        return {}
    is_record = dataclasses.is_dataclass(record) and not isinstance(record, type)
    fields = dataclasses.asdict(record) if is_record else dict(record)
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in fields.items()}


def budget_view(record: Any) -> dict[str, Any]:
    """A key or end-user record with its remaining budget, for the admin API."""
    info = as_dict(record)
    if info.get("max_budget") is not None:
        info["remaining_budget"] = float(info["max_budget"]) - float(info.get("spend") or 0)
    return info
