"""One finished call as a flat dict of safe fields, shared by the JSON request log and every callback event.

Never the query, the documents or a key: the caller appears by key alias and user id only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..engine import Call
from ..errors import error_class

# Statuses a /rerank request can get before it reaches the engine, named like the errors the engine raises.
REFUSED_CLASSES = {400: "InvalidRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
                   404: "ModelNotFoundError", 413: "PayloadTooLargeError", 422: "UnprocessableRequestError",
                   429: "RateLimitError", 500: "InternalError"}


def call_record(call: Call) -> dict[str, Any]:
    outcome, error = call.outcome, call.error
    deployment, response = outcome.deployment, outcome.response
    tokens = response.usage.tokens if response is not None else None
    elapsed = call.elapsed_ms
    caller, end_user, alias = call.caller, call.end_user, call.alias
    key_alias, user_id = caller.key_alias, caller.user_id
    return {
        "event": "rerank",
        "request_id": call.request_id,
        "time": call.started_at.isoformat(),
        # short() only when a text is long: four calls per request otherwise
        "key_alias": short(key_alias) if key_alias is not None and len(key_alias) > FIELD_CHARS else key_alias,
        "user_id": short(user_id) if user_id is not None and len(user_id) > FIELD_CHARS else user_id,
        "end_user": short(end_user) if end_user is not None and len(end_user) > FIELD_CHARS else end_user,
        "model": (short(alias) if len(alias) > FIELD_CHARS else alias) or None,
        "served_model": outcome.alias if response is not None else None,
        "deployment": deployment.id if deployment is not None else None,
        "provider": deployment.provider.name if deployment is not None else None,
        "api_version": call.api_version,
        "documents": len(call.request.documents) if call.request is not None else None,
        "status": error.status if error is not None else 200,
        "latency_ms": round(elapsed, 3),
        "upstream_ms": round(outcome.upstream_ms, 3),
        "overhead_ms": round(max(elapsed - outcome.upstream_ms, 0.0), 3),
        "cost": float(call.cost),
        "search_units": response.search_units if response is not None else 0.0,
        "tokens": int(tokens) if tokens is not None else None,
        "attempts": len(outcome.attempts) + (1 if response is not None else 0),
        "fallback_used": outcome.fallback_used,
        "error_class": error_class(error) if error is not None else None,
        "cache": call.cache.status if call.cache is not None else None,
        "cache_saved": float(call.cache.saved) if call.cache is not None else 0.0,
    }


FIELD_CHARS = 256
"""Longest caller-chosen text (model, end-user) a record carries: a 1 MB `user` must not make a 1 MB log line."""


def short(value: str | None) -> str | None:
    return value if value is None or len(value) <= FIELD_CHARS else value[:FIELD_CHARS] + "..."


def refused_record(status: int, request_id: str | None, latency_ms: float) -> dict[str, Any]:
    """A /rerank request answered before it reached the engine (bad key, body too large, unreadable JSON)."""
    return {
        "event": "rerank", "request_id": request_id, "time": now(), "key_alias": None, "end_user": None, "model": None,
        "deployment": None, "provider": None, "status": status, "latency_ms": round(latency_ms, 3),
        "overhead_ms": round(latency_ms, 3), "cost": 0.0, "fallback_used": False,
        "error_class": REFUSED_CLASSES.get(status, f"HTTP{status}") if status >= 400 else None,
    }


def now() -> str:
    return datetime.now(UTC).isoformat()
