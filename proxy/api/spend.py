"""`GET /spend/logs`: one row per request, filterable and paginated."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from .deps import AdminDep, RuntimeDep
from .keys import digest_of
from .rendering import json_response
from .store_access import as_dict, in_thread

router = APIRouter(tags=["spend"])


@router.get("/spend/logs")
async def spend_logs(
    _: AdminDep,
    runtime: RuntimeDep,
    api_key: str | None = None,
    end_user: str | None = None,
    user_id: str | None = Query(default=None, description="alias of end_user, as LiteLLM names it"),
    model: str | None = None,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    page: int = Query(1, ge=1),
    page_size: int = Query(100, ge=1, le=1000),
) -> Response:
    rows, total = await in_thread(
        runtime.store.spend_logs, api_key_hash=digest_of(api_key) if api_key else None,
        end_user=end_user or user_id, model=model, start=start_date, end=end_date, page=page, size=page_size,
    )
    body: list[dict[str, Any]] = [as_dict(r) for r in rows]
    return json_response(body, headers={"x-total-count": str(total), "x-page": str(page)})
