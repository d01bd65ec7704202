"""Render results and errors as Cohere-style JSON; nothing leaves as a bare 500 or a stack trace."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from ..errors import InternalError, ProxyError
from .admin_types import REFUSED

log = logging.getLogger("proxy.api")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(content: Any) -> bytes:
    """Compact JSON; orjson (which also covers datetimes and dataclasses), the stdlib for what it refuses."""
    try:
        return orjson.dumps(content, default=_default, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(content, default=_default, separators=(",", ":")).encode()


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return raw_json_response(dumps(content), status, headers)


def raw_json_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def error_headers(exc: ProxyError, headers: dict[str, str] | None = None) -> dict[str, str]:
    """The response headers of an error: the given ones plus Retry-After when the error says when to retry."""
    headers = dict(headers or {})
    if exc.retry_after is not None or (exc.status in (429, 503) and getattr(exc, "resets", True)):
        headers["retry-after"] = str(max(1, math.ceil(exc.retry_after or 1)))  # never sooner than asked
    return headers


def error_response(exc: ProxyError, headers: dict[str, str] | None = None) -> Response:
    return json_response(exc.body(), exc.status, error_headers(exc, headers))


def validation_message(errors: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for item in errors[:5]:
        where = ".".join(str(p)[:64] for p in item.get("loc", ()) if p != "body") or "body"  # keys are input
        parts.append(f"{where}: {str(item.get('msg', 'invalid'))[:300]}")
    return "invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProxyError)
    async def _proxy_error(request: Request, exc: ProxyError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        # A value the schema allows but we refuse (admin_types): 400. Any, not all: a union reports its other
        # branches' mismatches beside it.
        refused = any(item.get("type") == REFUSED for item in errors)
        return json_response({"message": validation_message(errors)}, 400 if refused else 422)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        return json_response({"message": str(exc.detail)}, exc.status_code, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error on %s %s: %s", request.method, request.url.path, type(exc).__name__,
                  exc_info=exc)
        return error_response(InternalError())
