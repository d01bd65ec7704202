"""`GET /models`, `/v1/models` and `/v1/models/{model}`: the aliases a key may use, in LiteLLM's (OpenAI's) shape
(`data`) and Cohere's (`models`) at once, so `co.models.list()` and OpenAI-style clients both find them.

Cohere's query parameters work: `endpoint` (only `rerank` has models here), `default_only` (the alias a
request without `model` gets, when there is exactly one), `page_size` and `page_token` (all at once without
`page_size`; Cohere's own API pages by 20).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query

from ..errors import InvalidRequestError, ModelNotFoundError
from .admin_types import responses
from .deps import CallerDep, RuntimeDep

router = APIRouter(tags=["models"], responses=responses(400, 401, 404, 422, 503))

ENDPOINTS = ["rerank"]


def _entry(alias: str, created: int, default: bool) -> dict[str, Any]:
    """One model in both shapes: OpenAI's `id`/`object`/`created`/`owned_by`, Cohere's `name`/`endpoints`/..."""
    return {"id": alias, "object": "model", "created": created, "owned_by": "rerank-proxy",
            "name": alias, "endpoints": ENDPOINTS, "finetuned": False, "is_deprecated": False,
            "default_endpoints": ENDPOINTS if default else []}


def _visible(caller: Any, runtime: Any) -> list[str]:
    hidden = runtime.router.hidden_aliases
    return [alias for alias in runtime.router.aliases if alias not in hidden and caller.may_use(alias)]


@router.get("/models")
@router.get("/v1/models")
async def models(caller: CallerDep, runtime: RuntimeDep, endpoint: str | None = None,
                 default_only: bool = False, page_size: Annotated[int | None, Query(ge=1, le=1000)] = None,
                 page_token: str | None = None) -> dict[str, Any]:
    aliases = [] if endpoint not in (None, *ENDPOINTS) else _visible(caller, runtime)
    default = next(iter(runtime.router.aliases)) if len(runtime.router.aliases) == 1 else None
    if default_only:
        if endpoint is None:
            raise InvalidRequestError("default_only needs endpoint (Cohere's rule)")
        aliases = [a for a in aliases if a == default]
    start = _offset(page_token)
    stop = start + page_size if page_size is not None else len(aliases)
    created = int(time.time())
    page = [_entry(alias, created, alias == default) for alias in aliases[start:stop]]
    answer: dict[str, Any] = {"object": "list", "data": page, "models": page}
    if stop < len(aliases):
        answer["next_page_token"] = str(stop)
    return answer


@router.get("/v1/models/{model:path}")
async def model(model: str, caller: CallerDep, runtime: RuntimeDep) -> dict[str, Any]:
    if model not in _visible(caller, runtime):
        raise ModelNotFoundError(f"model '{model}' not found; ask GET /v1/models for the models you can use")
    return _entry(model, int(time.time()), len(runtime.router.aliases) == 1)


def _offset(token: str | None) -> int:
    if token is None or token == "":
        return 0
    if not token.isdigit():
        raise InvalidRequestError("page_token is not one this server gave out")
    return int(token)
