"""The Teams, Users, End-users and Tags pages: list, add, edit, block and delete, through the admin API's routes.

Each form's fields are described in `forms.py`; a team's members and a user's teams are edited as the whole
list, and the difference is applied with `/team/member_add` and `/team/member_delete`, so every membership
change is audited as the API audits it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..api import customers, tags, teams, users
from ..api.admin_models import (
    CustomerIds,
    CustomerNew,
    CustomerUpdate,
    Member,
    TagName,
    TagNew,
    TeamIds,
    TeamMemberAdd,
    TeamMemberDelete,
    TeamNew,
    TeamRef,
    TeamUpdate,
    UserIds,
    UserNew,
    UserUpdate,
)
from ..api.runtime import Runtime
from ..auth.caller import Caller
from ..errors import ProxyError
from .forms import fields_for, values
from .web import UI_CALLER, SessionDep, back, form_of, message_of, page, runtime_of

router = APIRouter(prefix="/ui", include_in_schema=False)

PAGES = {  # kind → (title, id field, name field, can block)
    "teams": ("Teams", "team_id", "team_alias", True),
    "users": ("Users", "user_id", "user_alias", False),
    "customers": ("End-users", "user_id", "alias", True),
    "tags": ("Tags", "name", "description", False),
}


async def _rows(kind: str, runtime: Runtime) -> list[dict[str, Any]]:
    if kind == "teams":
        return await teams.list_teams(UI_CALLER, runtime, user_id=None, page=1, size=1000)
    if kind == "users":
        return (await users.list_users(UI_CALLER, runtime, page=1, page_size=1000, user_ids=None))["users"]
    if kind == "customers":
        return await customers.list_customers(UI_CALLER, runtime, page=1, size=1000)
    return await tags.list_tags(UI_CALLER, runtime)


async def _page(request: Request, session: Any, kind: str, created: dict[str, Any] | None = None) -> HTMLResponse:
    title, id_field, name_field, can_block = PAGES[kind]
    rows = await _rows(kind, runtime_of(request))
    return page(request, "holders.html", session, kind=kind, title=title, rows=rows, id_field=id_field,
                name_field=name_field, can_block=can_block, create_fields=fields_for(kind, "create"),
                edit_fields=fields_for(kind, "edit"), created=created)


def _listing(kind: str) -> Any:
    async def listing(request: Request, session: SessionDep) -> HTMLResponse:
        return await _page(request, session, kind)
    return listing


for _kind in PAGES:
    router.add_api_route(f"/{_kind}", _listing(_kind), methods=["GET"], response_class=HTMLResponse)


@router.post("/{kind}/new")
async def holder_new(request: Request, session: SessionDep, kind: str) -> Response:
    posted = await form_of(request, session)
    caller = session.caller
    if kind not in PAGES:
        return back("/ui", error=f"unknown page {kind!r}")
    runtime = runtime_of(request)
    try:
        given = values(kind, "create", posted)
        if kind == "teams":
            await teams.new(TeamNew(**given), caller, runtime)
        elif kind == "users":
            created = await users.new(UserNew(**{"auto_create_key": False, **given}), caller, runtime)
            if created.get("key"):  # the new key's secret: shown once, in this answer only
                return await _page(request, session, kind, created=created)
        elif kind == "customers":
            await customers.new(CustomerNew(**given), caller, runtime)
        else:
            await tags.new(TagNew(**given), caller, runtime)
    except (ProxyError, ValueError) as exc:
        return back(f"/ui/{kind}", error=message_of(exc))
    return back(f"/ui/{kind}", flash="created")


@router.post("/{kind}/{ident}/{action}")
async def holder_action(request: Request, session: SessionDep, kind: str, ident: str, action: str) -> Response:
    posted = await form_of(request, session)
    caller = session.caller
    if kind not in PAGES or action not in ("update", "delete", "block", "unblock") or (
            action in ("block", "unblock") and not PAGES[kind][3]):
        return back("/ui", error="unknown action")
    runtime = runtime_of(request)
    try:
        if action == "update":
            await _update(runtime, caller, kind, ident, values(kind, "edit", posted))
        elif action == "delete":
            await _delete(runtime, caller, kind, ident)
        elif kind == "teams":
            await (teams.block if action == "block" else teams.unblock)(TeamRef(team_id=ident), caller, runtime)
        else:
            await (customers.block if action == "block" else customers.unblock)(
                CustomerIds(user_ids=[ident]), caller, runtime)
    except (ProxyError, ValueError) as exc:
        return back(f"/ui/{kind}", error=message_of(exc))
    return back(f"/ui/{kind}", flash={"update": "saved", "delete": "deleted"}.get(action, f"{action}ed"))


async def _update(runtime: Runtime, caller: Caller, kind: str, ident: str, given: dict[str, Any]) -> None:
    if kind == "teams":
        members = given.pop("members_with_roles", None)
        body = TeamUpdate(team_id=ident, **given)  # checked before any membership changes
        if members is not None:
            wanted = [Member(**m) for m in members]
            current = (await teams.info(caller, runtime, team_id=ident))["team_info"]["members_with_roles"]
            await _members(runtime, caller, ident, {m["user_id"]: m["role"] for m in current},
                           {m.user_id: m.role for m in wanted})
        await teams.update(body, caller, runtime)
    elif kind == "users":
        wanted_teams = given.pop("teams", None)
        body_u = UserUpdate(user_id=ident, **given)
        if wanted_teams is not None:
            current_teams = {t["team_id"] for t in (await users.info(caller, runtime, user_id=ident))["teams"]}
            for team_id in current_teams - set(wanted_teams):
                await teams.member_delete(TeamMemberDelete(team_id=team_id, user_id=ident), caller, runtime)
            for team_id in dict.fromkeys(wanted_teams):
                if team_id not in current_teams:
                    await teams.member_add(TeamMemberAdd(team_id=team_id, member=Member(user_id=ident)),
                                           caller, runtime)
        await users.update(body_u, caller, runtime)
    elif kind == "customers":
        await customers.update(CustomerUpdate(user_id=ident, **given), caller, runtime)
    else:
        await tags.update(TagNew(name=ident, **given), caller, runtime)


async def _members(runtime: Runtime, caller: Caller, team_id: str, current: dict[str, str],
                   wanted: dict[str, str]) -> None:
    for user_id in current.keys() - wanted.keys():
        await teams.member_delete(TeamMemberDelete(team_id=team_id, user_id=user_id), caller, runtime)
    changed = [Member(user_id=u, role=r) for u, r in wanted.items() if current.get(u) != r]
    if changed:
        await teams.member_add(TeamMemberAdd(team_id=team_id, member=changed), caller, runtime)


async def _delete(runtime: Runtime, caller: Caller, kind: str, ident: str) -> None:
    if kind == "teams":
        await teams.delete(TeamIds(team_ids=[ident]), caller, runtime)
    elif kind == "users":
        await users.delete(UserIds(user_ids=[ident]), caller, runtime)
    elif kind == "customers":
        await customers.delete(CustomerIds(user_ids=[ident]), caller, runtime)
    else:
        await tags.delete(TagName(name=ident), caller, runtime)
