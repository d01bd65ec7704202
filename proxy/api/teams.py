"""Teams, with LiteLLM's routes and shapes: `/team/new`, `/team/info`, `/team/list`, `/team/update`,
`/team/delete`, `/team/member_add`, `/team/member_delete`, `/team/block`, `/team/unblock`."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from ..auth.caller import Caller
from ..errors import InvalidRequestError, NotFoundError
from ..spend.holders import TEAM, USER
from .admin_models import TeamFields, TeamIds, TeamMemberAdd, TeamMemberDelete, TeamNew, TeamRef, TeamUpdate
from .admin_types import ADMIN_RESPONSES, Page, PageSize, QueryName, RequiredQueryName
from .audit import audited
from .deps import AdminDep, AdminReaderDep, RuntimeDep
from .runtime import Runtime
from .store_access import as_dict, budget_view, in_thread

router = APIRouter(tags=["teams"], responses=ADMIN_RESPONSES)


def _fields(body: TeamFields) -> dict[str, Any]:
    return body.model_dump(exclude_none=True, exclude={"team_id", "members_with_roles"})


async def team_view(runtime: Runtime, record: Any) -> dict[str, Any]:
    """LiteLLM's team object: the row, its remaining budget and `members_with_roles`."""
    members = await in_thread(runtime.store.memberships, team_id=record.team_id)
    return {**budget_view(record), "members_with_roles": [{"user_id": m.user_id, "role": m.role} for m in members]}


async def _get(runtime: Runtime, team_id: str) -> Any:
    record = await in_thread(runtime.store.get_holder, TEAM, team_id)
    if record is None:
        raise NotFoundError(f"team '{team_id}' not found")
    return record


@router.post("/team/new")
async def new(body: TeamNew, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    team_id = body.team_id or str(uuid.uuid4())
    record = await in_thread(runtime.store.create_holder, TEAM, team_id, **_fields(body))
    if body.members_with_roles:
        await in_thread(runtime.store.add_members, team_id, [(m.user_id, m.role) for m in body.members_with_roles])
    await audited(runtime, caller, "created", "teams", team_id, after=record)
    return await team_view(runtime, record)


@router.get("/team/info")
async def info(_: AdminReaderDep, runtime: RuntimeDep, team_id: RequiredQueryName) -> dict[str, Any]:
    record = await _get(runtime, team_id)
    view = await team_view(runtime, record)
    await runtime.governance.describe_holder(view, "team", record)
    keys, _total = await in_thread(runtime.store.list_keys, team_id=team_id, size=1000)
    members = await in_thread(runtime.store.memberships, team_id=team_id)
    return {"team_id": team_id, "team_info": view, "keys": [budget_view(k) for k in keys],
            "team_memberships": [as_dict(m) for m in members]}


@router.get("/team/list")
async def list_teams(_: AdminReaderDep, runtime: RuntimeDep, user_id: QueryName = None, page: Page = 1,
                     size: PageSize = 1000) -> list[dict[str, Any]]:
    idents = None
    if user_id is not None:
        idents = [m.team_id for m in await in_thread(runtime.store.memberships, user_id=user_id)]
    records, _total = await in_thread(runtime.store.list_holders, TEAM, idents=idents, page=page, size=size)
    return [await team_view(runtime, r) for r in records]


@router.post("/team/update")
async def update(body: TeamUpdate, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    return await _update(runtime, caller, body.team_id, "updated", _fields(body))


async def _update(runtime: Runtime, caller: Caller, team_id: str, action: str,
                  fields: dict[str, Any]) -> dict[str, Any]:
    before = await _get(runtime, team_id)
    record = await in_thread(runtime.store.update_holder, TEAM, team_id, **fields)
    if record is None:
        raise NotFoundError(f"team '{team_id}' not found")
    await runtime.records_changed()
    await audited(runtime, caller, action, "teams", team_id, before=before, after=record)
    return {"team_id": team_id, "data": await team_view(runtime, record)}


@router.post("/team/delete")
async def delete(body: TeamIds, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    existing = await in_thread(runtime.store.get_holders, TEAM, body.team_ids)
    missing = sorted(set(body.team_ids) - {t.team_id for t in existing})
    if missing:
        raise NotFoundError(f"team(s) not found: {', '.join(missing)}")
    await in_thread(runtime.store.delete_holders, TEAM, body.team_ids)
    await runtime.records_changed()
    for record in existing:
        await audited(runtime, caller, "deleted", "teams", record.team_id, before=record)
    return {"deleted_teams": body.team_ids}


@router.post("/team/member_add")
async def member_add(body: TeamMemberAdd, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    members = body.member if isinstance(body.member, list) else [body.member]
    if not members:
        raise InvalidRequestError("'member' lists no one to add")
    before = await _get(runtime, body.team_id)
    try:
        added = await in_thread(runtime.store.add_members, body.team_id, [(m.user_id, m.role) for m in members])
    except LookupError as exc:
        raise NotFoundError(str(exc)) from None
    users = await in_thread(runtime.store.get_holders, USER, [m.user_id for m in members])
    await runtime.records_changed()
    view = await team_view(runtime, before)
    await audited(runtime, caller, "member_added", "teams", body.team_id,
                  before={"members_with_roles": None}, after={"members_with_roles": view["members_with_roles"]})
    return {**view, "updated_users": [budget_view(u) for u in users],
            "updated_team_memberships": [as_dict(m) for m in added]}


@router.post("/team/member_delete")
async def member_delete(body: TeamMemberDelete, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    record = await _get(runtime, body.team_id)
    if not await in_thread(runtime.store.remove_members, body.team_id, [body.user_id]):
        raise NotFoundError(f"user '{body.user_id}' is not a member of team '{body.team_id}'")
    await runtime.records_changed()
    await audited(runtime, caller, "member_deleted", "teams", body.team_id, before={"user_id": body.user_id})
    return await team_view(runtime, record)


@router.post("/team/block")
async def block(body: TeamRef, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    return (await _update(runtime, caller, body.team_id, "blocked", {"blocked": True}))["data"]


@router.post("/team/unblock")
async def unblock(body: TeamRef, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    return (await _update(runtime, caller, body.team_id, "unblocked", {"blocked": False}))["data"]
