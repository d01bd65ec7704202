"""Bounded field types and documented error statuses for every admin route.

Each bound lives in the type, so it shows in `/openapi.json` and one schemathesis run over that schema
(tests/test_admin_fuzz.py) checks every admin route against it. Two kinds of refusal:

- 422: the value breaks the documented schema (wrong type, out of range, not a duration).
- 400: the schema allows the value but we refuse it (an `expires` in the past, metadata nested too deep);
  these validators raise `refused(...)`, which the error handler renders as 400.

New admin bodies and query parameters should use these types, and routers `responses=ADMIN_RESPONSES`.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import Query
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..spend.durations import DURATION_PATTERN

REFUSED = "refused_value"
"""The pydantic error type of a schema-valid value we refuse: rendered as 400, not 422."""

_ISO_START = re.compile(r"^[0-9]{4}-")
NO_NUL = r"^[^\x00]*$"
"""PostgreSQL text cannot hold NUL characters."""
NAME_MAX = 256
KEY_MAX = 512
LIST_MAX = 1_000
LIMIT_MAX = 2**31 - 1
"""Rate and parallel limits are 32-bit integer columns."""
BUDGET_MAX = 1e9
"""Money is Numeric(20, 10): ten digits before the point."""
PAGE_MAX = 1_000_000
PAGE_SIZE_MAX = 1_000
METADATA_KEYS_MAX = 64
METADATA_DEPTH_MAX = 8
METADATA_BYTES_MAX = 16_384
EXPIRES_MAX = timedelta(days=365 * 1_000)


def refused(message: str) -> PydanticCustomError:
    return PydanticCustomError(REFUSED, message)


def _depth(value: Any) -> int:
    """How deep `value` nests; NUL characters and non-finite numbers are refused on the way."""
    if isinstance(value, str):
        if "\x00" in value:
            raise refused("metadata must not contain NUL characters")
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        raise refused("metadata numbers must be finite")
    if isinstance(value, dict):
        return 1 + max((max(_depth(k), _depth(v)) for k, v in value.items()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    if _depth(value) > METADATA_DEPTH_MAX:
        raise refused(f"metadata may nest at most {METADATA_DEPTH_MAX} levels deep")
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:
        raise refused("metadata must be plain JSON: integers within 64 bits, no unpaired surrogates") from None
    if len(encoded) > METADATA_BYTES_MAX:
        raise refused(f"metadata is {len(encoded)} bytes as JSON; at most {METADATA_BYTES_MAX} are allowed")
    return value


def _iso_text(value: Any) -> Any:
    """Date-times arrive as ISO 8601 text; a bare number (a Unix time?) is refused, not guessed."""
    if value is None or isinstance(value, datetime) or (isinstance(value, str) and _ISO_START.match(value)):
        return value
    raise PydanticCustomError("datetime_type", "expected an ISO 8601 date-time, e.g. 2030-01-31T00:00:00Z")


def _whole_number(value: Any) -> Any:
    """JSON's integers, `5.0` included (JSON Schema calls it an integer); never text or a boolean."""
    if isinstance(value, (str, bool)):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def _future(value: datetime) -> datetime:
    value = value if value.utcoffset() is not None else value.replace(tzinfo=UTC)  # naive means UTC
    now = datetime.now(UTC)
    if value <= now:
        raise refused("expires is in the past; pass a future date-time (or a duration)")
    if value - now > EXPIRES_MAX:
        raise refused("expires is more than 1,000 years away")
    return value.astimezone(UTC)


def _clean_text(value: str) -> str:
    try:
        value.encode()
    except UnicodeEncodeError:
        raise refused("text must not contain unpaired surrogates") from None
    return value


def _plain_key(value: str) -> str:
    if "\x00" in value:
        raise refused("object keys must not contain NUL characters")
    return _clean_text(value)


Name = Annotated[str, StringConstraints(min_length=1, max_length=NAME_MAX, pattern=NO_NUL),
                 AfterValidator(_clean_text)]
"""An identifier or label: alias, user id, model or guardrail name."""
KeyText = Annotated[str, StringConstraints(min_length=1, max_length=KEY_MAX, pattern=NO_NUL),
                    AfterValidator(_clean_text)]
"""A virtual key or its SHA-256 digest."""
NewKey = Annotated[str, StringConstraints(min_length=4, max_length=KEY_MAX, pattern=r"^sk-[^\x00]*$"),
                   AfterValidator(_clean_text)]
"""A caller-chosen virtual key: starts with `sk-`."""
Names = Annotated[list[Name], Field(max_length=LIST_MAX)]
NameKey = Annotated[str, StringConstraints(min_length=1, max_length=NAME_MAX), AfterValidator(_plain_key)]
"""A name used as a JSON object key (the schema cannot state a key's pattern: NUL is refused with 400)."""
DurationText = Annotated[str, StringConstraints(max_length=32, pattern=DURATION_PATTERN)]
"""`30s`, `5m`, `1h`, `1d`, `2w`, `1mo`: up to 99999 (9999 months)."""
Budget = Annotated[float, Strict(), Field(ge=0, le=BUDGET_MAX, allow_inf_nan=False)]
Limit = Annotated[int, Field(ge=0, le=LIMIT_MAX), BeforeValidator(_whole_number)]  # Field first: bounds in schema
Flag = Annotated[bool, Strict()]
Metadata = Annotated[dict[str, Any], Field(max_length=METADATA_KEYS_MAX, description=(
    f"free-form JSON: at most {METADATA_KEYS_MAX} keys, {METADATA_DEPTH_MAX} levels, {METADATA_BYTES_MAX} bytes")),
    AfterValidator(_check_metadata)]
"""Free-form JSON, at most 64 keys, 8 levels and 16 KiB."""
FutureTime = Annotated[datetime, BeforeValidator(_iso_text), AfterValidator(_future)]
"""An ISO 8601 date-time, later than now (naive means UTC)."""

Page = Annotated[int, Query(ge=1, le=PAGE_MAX)]
PageSize = Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX)]
RequiredQueryName = Annotated[str, Query(min_length=1, max_length=NAME_MAX, pattern=NO_NUL)]
QueryName = Annotated[str | None, Query(min_length=1, max_length=NAME_MAX, pattern=NO_NUL)]
QueryTime = Annotated[datetime | None, BeforeValidator(_iso_text), Query()]
"""An ISO 8601 date-time filter."""
QueryKey = Annotated[str | None, Query(min_length=1, max_length=KEY_MAX, pattern=NO_NUL)]


class AdminBody(BaseModel):
    """Base of admin request bodies. A field we do not implement is refused (400, naming it) unless its value
    asks for nothing (null, false, "", {} or []): LiteLLM's admin scripts and SDKs often send such defaults,
    and a value that would change something must never be accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_fields_that_ask_for_something(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(cls.model_fields) | {field.alias for field in cls.model_fields.values() if field.alias}
            asked = sorted(name for name, value in data.items()
                           if name not in known and value not in (None, False, "", {}, []))
            if asked:
                raise refused(f"not supported by rerank-proxy: {', '.join(map(str, asked))} (remove the field, "
                              "or send null)")
        return data


class ErrorBody(BaseModel):
    message: str


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("a value the schema allows but the proxy refuses (past expiry, unknown guardrail, duplicate)"),
    401: _error("no key, or an unknown, expired or blocked one"),
    403: _error("the route needs the master key"),
    404: _error("no such record"),
    422: _error("the request breaks the documented schema"),
    503: _error("the database did not answer in time"),
}
"""The statuses every admin route may answer besides 200 (`APIRouter(responses=ADMIN_RESPONSES)`)."""


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route that may answer only some of `ADMIN_RESPONSES`."""
    return {status: ADMIN_RESPONSES[status] for status in statuses}
