"""`GET /spend/logs`: one row per request, filterable and paginated."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from .admin_types import ADMIN_RESPONSES, NAME_MAX, NO_NUL, Page, PageSize, QueryKey, QueryName, QueryTime
from .deps import AdminReaderDep, RuntimeDep
from .keys import digest_of
from .rendering import json_response
from .store_access import as_dict, in_thread

router = APIRouter(tags=["spend"], responses=ADMIN_RESPONSES)


@router.get("/spend/logs")
async def spend_logs(
    _: AdminReaderDep,
    runtime: RuntimeDep,
    api_key: QueryKey = None,
    end_user: QueryName = None,
    user_id: Annotated[str | None, Query(min_length=1, max_length=NAME_MAX, pattern=NO_NUL,
                                         description="alias of end_user, as LiteLLM names it")] = None,
    model: QueryName = None,
    start_date: QueryTime = None,
    end_date: QueryTime = None,
    page: Page = 1,
    page_size: PageSize = 100,
) -> Response:
    digest = digest_of(api_key) if api_key else None
    key = await in_thread(runtime.store.get_key, digest) if digest else None
    rows, total = await in_thread(
        runtime.store.spend_logs, api_key_hash=key.token if key is not None else digest,
        key_id=key.key_id if key is not None else None,
        end_user=end_user or user_id, model=model, start=start_date, end=end_date, page=page, size=page_size,
    )
    body: list[dict[str, Any]] = [as_dict(r) for r in rows]
    return json_response(body, headers={"x-total-count": str(total), "x-page": str(page)})
