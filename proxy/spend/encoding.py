"""JSON for spend storage: Decimal and datetime (at any depth, e.g. in event metadata) become strings; and the
PostgreSQL array literals the spend writer sends its columns as."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson


def to_json(value: Any) -> str:
    """Compact JSON; Decimal → "1.5", datetime/date → ISO 8601, sets and tuples → lists.

    orjson (a tenth of the time per spend row); the standard library for what orjson refuses, such as
    integers wider than 64 bits.
    """
    try:
        return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value, default=_default, separators=(",", ":"))


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def pg_array(values: Iterable[Any]) -> str:
    """A PostgreSQL array literal of `values`: None as NULL, anything else as its `str()` in double quotes
    (the statement casts the text to the column's array type). psycopg's list dumper checked every element
    with a regex, which was most of the PostgreSQL writer's CPU per row."""
    quoted = ('"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"' if value is not None else "NULL"
              for value in values)
    return "{" + ",".join(quoted) + "}"
