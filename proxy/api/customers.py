"""End-users (LiteLLM "customers"): created on first sight by traffic, or by the admin API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..auth.caller import Caller
from ..errors import NotFoundError
from .admin_models import CustomerFields, CustomerIds, CustomerNew, CustomerUpdate
from .admin_types import ADMIN_RESPONSES, Page, PageSize, RequiredQueryName
from .audit import audited
from .deps import AdminDep, AdminReaderDep, RuntimeDep
from .runtime import Runtime
from .store_access import budget_view, in_thread

router = APIRouter(tags=["customers"], responses=ADMIN_RESPONSES)


def _fields(body: CustomerFields) -> dict[str, Any]:
    return body.model_dump(exclude_none=True, exclude={"user_id"})


async def _changed(runtime: Runtime, user_ids: list[str]) -> None:
    """Drop the end-users' cached records so new limits and budgets apply here at once (and, through the
    change log, on every other process within `model_sync_interval`)."""
    for user_id in user_ids:
        runtime.governance.forget_end_user(user_id)
    await runtime.records_changed()


@router.post("/customer/new")
@router.post("/end_user/new", include_in_schema=False)
async def new(body: CustomerNew, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    record = await in_thread(runtime.store.create_customer, body.user_id, **_fields(body))
    await _changed(runtime, [body.user_id])
    await audited(runtime, caller, "created", "end_users", body.user_id, after=record)
    return budget_view(record)


@router.get("/customer/info")
@router.get("/end_user/info", include_in_schema=False)
async def info(_: AdminReaderDep, runtime: RuntimeDep, end_user_id: RequiredQueryName) -> dict[str, Any]:
    record = await in_thread(runtime.store.get_customer, end_user_id)
    if record is None:
        raise NotFoundError(f"end-user '{end_user_id}' not found")
    info = budget_view(record)
    await runtime.governance.describe_end_user(info, record)  # live spend, remaining budget, current reset time
    return info


@router.get("/customer/list")
@router.get("/end_user/list", include_in_schema=False)
async def list_customers(_: AdminReaderDep, runtime: RuntimeDep, page: Page = 1,
                         size: PageSize = 100) -> list[dict[str, Any]]:
    records, _total = await in_thread(runtime.store.list_customers, page=page, size=size)
    return [budget_view(r) for r in records]


@router.post("/customer/update")
@router.post("/end_user/update", include_in_schema=False)
async def update(body: CustomerUpdate, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    before = await in_thread(runtime.store.get_customer, body.user_id)
    record = await in_thread(runtime.store.update_customer, body.user_id, **_fields(body))
    if record is None:
        raise NotFoundError(f"end-user '{body.user_id}' not found")
    await _changed(runtime, [body.user_id])
    await audited(runtime, caller, "updated", "end_users", body.user_id, before=before, after=record)
    return budget_view(record)


@router.post("/customer/delete")
@router.post("/end_user/delete", include_in_schema=False)
async def delete(body: CustomerIds, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    existing = [await in_thread(runtime.store.get_customer, u) for u in dict.fromkeys(body.user_ids)]
    count = await in_thread(runtime.store.delete_customers, body.user_ids)
    await _changed(runtime, body.user_ids)
    for record in existing:
        if record is not None:
            await audited(runtime, caller, "deleted", "end_users", record.user_id, before=record)
    return {"deleted": count, "user_ids": body.user_ids}


async def _block(body: CustomerIds, caller: Caller, runtime: Runtime, blocked: bool) -> dict[str, Any]:
    await in_thread(runtime.store.set_customers_blocked, body.user_ids, blocked)
    await _changed(runtime, body.user_ids)
    for user_id in body.user_ids:
        await audited(runtime, caller, "blocked" if blocked else "unblocked", "end_users", user_id,
                      after={"blocked": blocked})
    return {"blocked": blocked, "user_ids": body.user_ids}


@router.post("/customer/block")
@router.post("/end_user/block", include_in_schema=False)
async def block(body: CustomerIds, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    return await _block(body, caller, runtime, True)


@router.post("/customer/unblock")
@router.post("/end_user/unblock", include_in_schema=False)
async def unblock(body: CustomerIds, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    return await _block(body, caller, runtime, False)


