"""Model management, LiteLLM's shapes: `/model/new`, `/model/update`, `PATCH /model/{id}/update`,
`/model/delete`, `/model/info`, `/model_group/info`, and `/config/reload`. The logic is `LiveModels`'."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from ..auth.caller import Caller
from ..errors import InvalidRequestError, StoreUnavailableError
from ..live_models import LiveModels
from ..pricing import price_for
from ..secret_box import public_params
from ..settings import ConfigError
from ..spend.stored_models import StoredModel
from .admin_types import ADMIN_RESPONSES, Metadata, Name
from .audit import audited
from .deps import AdminDep, CallerDep, RuntimeDep
from .runtime import Runtime

router = APIRouter(tags=["models"], responses=ADMIN_RESPONSES)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelNew(_Body):
    model_name: Name
    litellm_params: Metadata
    model_info: Metadata = Field(default_factory=dict)


class ModelInfoRef(_Body):
    id: Name


class ModelUpdate(_Body):
    model_name: Name | None = None
    litellm_params: Metadata | None = None
    model_info: Metadata | None = None


class ModelUpdateById(ModelUpdate):
    model_info: Metadata
    """Must hold `id`: the model to change (LiteLLM's `updateDeployment`)."""


def _live(runtime: Runtime) -> LiveModels:
    if runtime.models is None:
        raise StoreUnavailableError("model management is not running")
    return runtime.models


def _row(row: StoredModel) -> dict[str, Any]:
    return {"model_id": row.model_id, "model_name": row.model_name, "model_info": {**row.model_info,
            "id": row.model_id, "db_model": True}, "created_at": row.created_at, "updated_at": row.updated_at}


@router.post("/model/new")
async def model_new(body: ModelNew, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    live = _live(runtime)
    row = await live.add(body.model_name, body.litellm_params, body.model_info)
    await audited(runtime, caller, "created", "proxy_models", row.model_id, after=live.shown(row.model_id))
    return {**_row(row), "litellm_params": public_params(body.litellm_params)}


@router.post("/model/update")
async def model_update(body: ModelUpdateById, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    model_id = body.model_info.get("id")
    if not isinstance(model_id, str) or not model_id:
        raise InvalidRequestError("model_info.id names the model to update")
    return await _update(runtime, caller, model_id, body)


@router.patch("/model/{model_id}/update")
async def model_patch(model_id: str, body: ModelUpdate, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    return await _update(runtime, caller, model_id, body)


async def _update(runtime: Runtime, caller: Caller, model_id: str, body: ModelUpdate) -> dict[str, Any]:
    live = _live(runtime)
    before = live.shown(model_id)
    row = await live.update(model_id, body.model_name, body.litellm_params, body.model_info)
    after = live.shown(model_id)
    await audited(runtime, caller, "updated", "proxy_models", model_id, before=before, after=after)
    return {**_row(row), "litellm_params": (after or {}).get("litellm_params", {})}


@router.post("/model/delete")
async def model_delete(body: ModelInfoRef, caller: AdminDep, runtime: RuntimeDep) -> dict[str, str]:
    live = _live(runtime)
    before = live.shown(body.id)
    await live.delete(body.id)
    await audited(runtime, caller, "deleted", "proxy_models", body.id, before=before)
    return {"message": f"Model: {body.id} deleted successfully"}


@router.get("/model/info")
@router.get("/v1/model/info", include_in_schema=False)
async def model_info(caller: CallerDep, runtime: RuntimeDep,
                     litellm_model_id: str | None = Query(default=None, max_length=256)) -> dict[str, Any]:
    """Every deployment the caller may use, with its provider, limits and prices; never a secret."""
    live = _live(runtime)
    data = []
    for alias, entries in _entries(live).items():
        if not (caller.may_read_admin or caller.may_use(alias)):
            continue
        for entry, deployment in zip(entries, live.settings.aliases.get(alias, ()), strict=False):
            if litellm_model_id is not None and deployment.id != litellm_model_id:
                continue
            price = price_for(deployment)
            info = {**entry.model_info, "id": deployment.id, "db_model": live.is_stored(deployment.id),
                    "provider": deployment.provider.name, "mode": "rerank",
                    "input_cost_per_query": _number(price.per_query),
                    "input_cost_per_token": _number(price.per_token)}
            data.append({"model_name": alias, "litellm_params": public_params(entry.litellm_params),
                         "model_info": info})
    return {"data": data}


@router.get("/model_group/info")
async def model_group_info(caller: CallerDep, runtime: RuntimeDep,
                           model_group: str | None = Query(default=None, max_length=256)) -> dict[str, Any]:
    """Per alias: its providers, summed limits, highest prices and the health of its deployments."""
    plan, states = runtime.router.plan, runtime.router.deployment_states()
    data = []
    for alias, group in plan.groups.items():
        if alias in plan.hidden_aliases or not (caller.may_read_admin or caller.may_use(alias)):
            continue
        if model_group is not None and alias != model_group:
            continue
        prices = [price_for(m.deployment) for m in group.members]
        health = {state: sum(1 for m in group.members if states.get(m.id) == state)
                  for state in ("healthy", "cooldown", "unavailable")}
        data.append({
            "model_group": alias, "mode": "rerank", "deployments": len(group.members),
            "providers": sorted({m.deployment.provider.name for m in group.members}),
            "rpm": _sum(m.rpm for m in group.members), "tpm": _sum(m.tpm for m in group.members),
            "input_cost_per_query": _number(max((p.per_query for p in prices if p.per_query is not None),
                                                default=None)),
            "input_cost_per_token": _number(max((p.per_token for p in prices if p.per_token is not None),
                                                default=None)),
            "health": health,
        })
    return {"data": data}


@router.post("/config/reload")
async def config_reload(caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Re-read the config file (as SIGHUP does): validated whole, swapped in only when good."""
    live = _live(runtime)
    try:
        change = await live.reload_file()
    except ConfigError as exc:
        raise InvalidRequestError("config not reloaded, still serving the previous one: "
                                  + "; ".join(exc.problems)) from None
    answer = {"reloaded": True, "models": change.aliases, "restart_required": change.restart_required}
    await audited(runtime, caller, "reloaded", "config", live.settings.source or "(built-in)", after=answer)
    return answer


def _entries(live: LiveModels) -> dict[str, list[Any]]:
    """The model_list entries by alias, in the order their deployments were built."""
    entries: dict[str, list[Any]] = {}
    for entry in live.settings.config.model_list:
        entries.setdefault(entry.model_name, []).append(entry)
    return entries


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _sum(values: Any) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None
