"""Tags with budgets and limits, with LiteLLM's routes and shapes: `/tag/new`, `/tag/info`, `/tag/list`,
`/tag/update`, `/tag/delete`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..errors import NotFoundError
from ..spend.holders import TAG
from .admin_models import TagFields, TagName, TagNames, TagNew
from .admin_types import ADMIN_RESPONSES
from .audit import audited
from .deps import AdminDep, AdminReaderDep, RuntimeDep
from .runtime import Runtime
from .store_access import budget_view, in_thread

router = APIRouter(tags=["tags"], responses=ADMIN_RESPONSES)

BUDGET_FIELDS = ("max_budget", "budget_duration", "budget_reset_at", "rpm_limit", "tpm_limit",
                 "max_parallel_requests")


def tag_view(record: Any) -> dict[str, Any]:
    """LiteLLM's TagConfig (`name`, `description`, `models`, `litellm_budget_table`) plus our spend fields."""
    view = budget_view(record)
    view["name"] = view.pop("tag_name")
    view["litellm_budget_table"] = {name: view[name] for name in BUDGET_FIELDS}
    return view


def _fields(body: TagFields) -> dict[str, Any]:
    return body.model_dump(exclude_none=True, exclude={"name"})


async def _changed(runtime: Runtime, name: str) -> None:
    """Drop the tag's cached record here at once (every other process follows through the change log)."""
    runtime.governance.forget_tag(name)
    await runtime.records_changed()


@router.post("/tag/new")
async def new(body: TagNew, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    record = await in_thread(runtime.store.create_holder, TAG, body.name, **_fields(body))
    await _changed(runtime, body.name)
    await audited(runtime, caller, "created", "tags", body.name, after=record)
    return {"message": f"Tag {body.name} created successfully", "tag": tag_view(record)}


@router.post("/tag/info")
async def info(body: TagNames, _: AdminReaderDep, runtime: RuntimeDep) -> dict[str, Any]:
    records = await in_thread(runtime.store.get_holders, TAG, body.names)
    missing = sorted(set(body.names) - {r.tag_name for r in records})
    if missing:
        raise NotFoundError(f"tag(s) not found: {', '.join(missing)}")
    views = {}
    for record in records:
        views[record.tag_name] = tag_view(record)
        await runtime.governance.describe_holder(views[record.tag_name], "tag", record)
    return views


@router.get("/tag/list")
async def list_tags(_: AdminReaderDep, runtime: RuntimeDep) -> list[dict[str, Any]]:
    records, _total = await in_thread(runtime.store.list_holders, TAG, size=10_000)
    return [tag_view(r) for r in records]


@router.post("/tag/update")
async def update(body: TagNew, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    before = await in_thread(runtime.store.get_holder, TAG, body.name)
    record = await in_thread(runtime.store.update_holder, TAG, body.name, **_fields(body))
    if before is None or record is None:
        raise NotFoundError(f"tag '{body.name}' not found")
    await _changed(runtime, body.name)
    await audited(runtime, caller, "updated", "tags", body.name, before=before, after=record)
    return {"message": f"Tag {body.name} updated successfully", "tag": tag_view(record)}


@router.post("/tag/delete")
async def delete(body: TagName, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    before = await in_thread(runtime.store.get_holder, TAG, body.name)
    if before is None:
        raise NotFoundError(f"tag '{body.name}' not found")
    await in_thread(runtime.store.delete_holders, TAG, [body.name])
    await _changed(runtime, body.name)
    await audited(runtime, caller, "deleted", "tags", body.name, before=before)
    return {"message": f"Tag {body.name} deleted successfully"}
