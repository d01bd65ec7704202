"""Internal users, with LiteLLM's routes and shapes: `/user/new`, `/user/info`, `/user/list`, `/user/update`,
`/user/delete`. A user owns keys (`user_id` on a key) and belongs to teams."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from ..auth.keys import display_name, generate_key, hash_key
from ..auth.roles import refusal
from ..errors import NotFoundError, PermissionDeniedError
from ..spend.durations import parse_duration
from ..spend.holders import TEAM, USER
from .admin_models import UserFields, UserIds, UserNew, UserUpdate
from .admin_types import ADMIN_RESPONSES, NO_NUL, Page, PageSize, RequiredQueryName
from .audit import audited
from .deps import AdminDep, AdminReaderDep, CallerDep, RuntimeDep
from .runtime import Runtime
from .store_access import budget_view, in_thread

router = APIRouter(tags=["users"], responses=ADMIN_RESPONSES)


def _fields(body: UserFields) -> dict[str, Any]:
    return body.model_dump(exclude_none=True, exclude={"user_id", "teams", "auto_create_key", "key_alias",
                                                       "duration"})


async def _teams_of(runtime: Runtime, user_id: str) -> list[str]:
    return [m.team_id for m in await in_thread(runtime.store.memberships, user_id=user_id)]


@router.post("/user/new")
async def new(body: UserNew, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    user_id = body.user_id or str(uuid.uuid4())
    for team_id in body.teams or []:
        if await in_thread(runtime.store.get_holder, TEAM, team_id) is None:
            raise NotFoundError(f"team '{team_id}' not found")
    record = await in_thread(runtime.store.create_holder, USER, user_id, **_fields(body))
    for team_id in body.teams or []:
        await in_thread(runtime.store.add_members, team_id, [(user_id, "user")])
    await audited(runtime, caller, "created", "internal_users", user_id, after=record)
    answer: dict[str, Any] = {**budget_view(record), "teams": body.teams or [], "key": None}
    if body.auto_create_key:
        key = generate_key()
        expires = parse_duration(body.duration).after(datetime.now(UTC)) if body.duration else None
        created = await in_thread(runtime.store.create_key, hash_key(key), key_name=display_name(key),
                                  key_alias=body.key_alias, user_id=user_id, expires=expires,
                                  models=body.models or [])
        await audited(runtime, caller, "created", "verification_tokens", created.key_id, after=created)
        answer.update(key=key, token=created.token, key_id=created.key_id, key_alias=created.key_alias,
                      key_name=created.key_name, expires=created.expires)
    await runtime.records_changed()  # keys naming this user id carry it from now on
    return answer


@router.get("/user/info")
async def info(caller: CallerDep, runtime: RuntimeDep, user_id: RequiredQueryName) -> dict[str, Any]:
    """Any user for the admin roles; a key whose `user_id` is this user may read it too (as in LiteLLM)."""
    if not caller.may_read_admin and (caller.user_id is None or caller.user_id != user_id):
        raise PermissionDeniedError(refusal(caller.role, write=False) + " (or a key of this user)")
    record = await in_thread(runtime.store.get_holder, USER, user_id)
    if record is None:
        raise NotFoundError(f"user '{user_id}' not found")
    view = budget_view(record)
    await runtime.governance.describe_holder(view, "user", record)
    keys, _total = await in_thread(runtime.store.list_keys, user_id=user_id, size=1000)
    teams = await in_thread(runtime.store.get_holders, TEAM, await _teams_of(runtime, user_id))
    return {"user_id": user_id, "user_info": view, "keys": [budget_view(k) for k in keys],
            "teams": [budget_view(t) for t in teams]}


@router.get("/user/list")
async def list_users(_: AdminReaderDep, runtime: RuntimeDep, page: Page = 1, page_size: PageSize = 25,
                     user_ids: Annotated[str | None, Query(max_length=4_096, pattern=NO_NUL,
                                                           description="comma-separated user ids")] = None,
                     ) -> dict[str, Any]:
    idents = [u for u in user_ids.split(",") if u] if user_ids else None
    records, total = await in_thread(runtime.store.list_holders, USER, idents=idents, page=page, size=page_size)
    users = [{**budget_view(r), "teams": await _teams_of(runtime, r.user_id)} for r in records]
    return {"users": users, "total": total, "page": page, "page_size": page_size,
            "total_pages": max(1, math.ceil(total / page_size))}


@router.post("/user/update")
async def update(body: UserUpdate, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    before = await in_thread(runtime.store.get_holder, USER, body.user_id)
    record = await in_thread(runtime.store.update_holder, USER, body.user_id, **_fields(body))
    if before is None or record is None:
        raise NotFoundError(f"user '{body.user_id}' not found")
    await runtime.records_changed()
    await audited(runtime, caller, "updated", "internal_users", body.user_id, before=before, after=record)
    return {"user_id": body.user_id, "data": budget_view(record)}


@router.post("/user/delete")
async def delete(body: UserIds, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    existing = await in_thread(runtime.store.get_holders, USER, body.user_ids)
    await in_thread(runtime.store.delete_holders, USER, body.user_ids)
    await runtime.records_changed()
    for record in existing:
        await audited(runtime, caller, "deleted", "internal_users", record.user_id, before=record)
    return {"deleted_users": [r.user_id for r in existing]}
