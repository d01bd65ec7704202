"""Spend and key persistence: schema, migrations, the `Store`, and the batched `SpendWriter`.

Names resolve lazily (PEP 562), so importing `proxy.spend.events` on the request path or in the SDK does
not pull in SQLAlchemy and Alembic.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .db import make_engine, migrate
    from .durations import Duration, parse_duration
    from .events import SpendEvent
    from .records import AlreadyExistsError, CustomerRecord, KeyRecord, ProxySpendRecord, SpendLogRecord
    from .store import Store
    from .writer import SpendWriter

_EXPORTS = {
    "AlreadyExistsError": "records",
    "CustomerRecord": "records",
    "Duration": "durations",
    "KeyRecord": "records",
    "ProxySpendRecord": "records",
    "SpendEvent": "events",
    "SpendLogRecord": "records",
    "SpendWriter": "writer",
    "Store": "store",
    "make_engine": "db",
    "migrate": "db",
    "parse_duration": "durations",
}
__all__ = [
    "AlreadyExistsError",
    "CustomerRecord",
    "Duration",
    "KeyRecord",
    "ProxySpendRecord",
    "SpendEvent",
    "SpendLogRecord",
    "SpendWriter",
    "Store",
    "make_engine",
    "migrate",
    "parse_duration",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
