"""The admin UI's pages at `/ui`: sign-in, overview, keys, models and logs (teams, users, end-users and tags
are in `holders_page.py`, reports and audit in their own modules).

Reads go to the same store and router the admin API reads; every form calls the admin API's own route
function (`api/keys.py`, `api/teams.py`, ...), so a change from the UI is checked, applied and audited
exactly as the same change through curl.
"""

from __future__ import annotations

import hmac
import math
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..api import keys
from ..api.admin_models import KeyDelete, KeyGenerate, KeyRef, KeyRegenerate, KeyUpdate
from ..api.store_access import as_dict, in_thread
from ..errors import ProxyError, StoreUnavailableError
from .admin_keys import DATABASE_DOWN, NOT_A_KEY, sign_in_key
from .forms import fields_for, values
from .overview import WINDOWS, build_overview
from .session import COOKIE, SESSION_SECONDS, Session
from .web import (
    PAGE_SIZE,
    SessionDep,
    back,
    client_address,
    day_bound,
    form_of,
    message_of,
    optional,
    page,
    paging_of,
    read_form,
    runtime_of,
    sessions_of,
    sign_in_limits_of,
)

router = APIRouter(prefix="/ui", include_in_schema=False)


# -- sign-in -------------------------------------------------------------------------------------------
@router.get("/login")
async def login_form(request: Request) -> Response:
    if sessions_of(request) is None:
        return RedirectResponse("/ui", status_code=303)
    return page(request, "login.html", Session("", 0, ""))


@router.post("/login")
async def login(request: Request) -> Response:
    sessions = sessions_of(request)
    if sessions is None:
        return RedirectResponse("/ui", status_code=303)
    limits = sign_in_limits_of(request)
    attempt = await limits.attempt(client_address(request))
    if isinstance(attempt, int):  # refused before the key is even compared: no guess counts while limited
        refused = page(request, "login.html", Session("", 0, ""), status=429,
                       login_error=f"Too many failed sign-ins. Try again in {_minutes(attempt)}.")
        refused.headers["retry-after"] = str(attempt)
        return refused
    given = (await read_form(request)).get("master_key", "")
    expected = runtime_of(request).settings.master_key or ""
    key_id = digest = ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        try:
            caller, why = await sign_in_key(runtime_of(request), given) if given else (None, NOT_A_KEY)
        except StoreUnavailableError:  # not a failed guess: nothing could be checked
            await limits.released(attempt)
            return page(request, "login.html", Session("", 0, ""), status=503, login_error=DATABASE_DOWN)
        if caller is None:
            limits.failed(attempt)
            return page(request, "login.html", Session("", 0, ""), status=401, login_error=why)
        key_id, digest = getattr(caller.record, "key_id", ""), caller.key_hash or ""
    await limits.succeeded(attempt)
    cookie, _ = sessions.issue(key_id, digest)
    response = RedirectResponse("/ui", status_code=303)
    response.set_cookie(COOKIE, cookie, max_age=SESSION_SECONDS, httponly=True, samesite="strict",
                        secure=_over_tls(request), path="/ui")
    return response


@router.post("/logout")
async def logout(request: Request, session: SessionDep) -> Response:
    await form_of(request, session, change=False)
    sessions = sessions_of(request)
    if sessions is not None:
        sessions.revoke(session)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict", secure=_over_tls(request))
    return response


def _minutes(seconds: int) -> str:
    return f"{seconds} seconds" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"


def _over_tls(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


# -- overview --------------------------------------------------------------------------------------------
@router.get("")
@router.get("/")
async def overview(request: Request, session: SessionDep, window: str = Query("day")) -> HTMLResponse:
    window = window if window in WINDOWS else "day"
    data = await in_thread(build_overview, runtime_of(request).store, window)
    return page(request, "overview.html", session, window=window, windows=list(WINDOWS), data=data)


# -- keys ----------------------------------------------------------------------------------------------
@router.get("/keys")
async def keys_page(request: Request, session: SessionDep, p: int = Query(1, ge=1, le=100_000)) -> HTMLResponse:
    runtime = runtime_of(request)
    listing = await keys.list_keys(session.caller, runtime, page=p, size=PAGE_SIZE, user_id=None, key_alias=None,
                                   team_id=None, return_full_object=True)
    return _keys_page(request, session, listing, p, created=None)


@router.post("/keys/new")
async def key_new(request: Request, session: SessionDep) -> Response:
    fields = await form_of(request, session)
    try:
        body = KeyGenerate(**values("keys", "create", fields))
        created = await keys.generate(body, session.caller, runtime_of(request))
    except (ProxyError, ValueError) as exc:
        return back("/ui/keys", error=message_of(exc))
    return await _keys_with_secret(request, session, created)


async def _keys_with_secret(request: Request, session: Session, created: dict[str, Any]) -> HTMLResponse:
    """The keys page with a new secret on it: shown once, in this answer only (never a URL, redirect or log)."""
    listing = await keys.list_keys(session.caller, runtime_of(request), page=1, size=PAGE_SIZE, user_id=None,
                                   key_alias=None, team_id=None, return_full_object=True)
    return _keys_page(request, session, listing, 1, created=created)


def _keys_page(request: Request, session: Session, listing: dict[str, Any], current: int,
               created: dict[str, Any] | None) -> HTMLResponse:
    return page(request, "keys.html", session, keys=listing["keys"], paging=paging_of(listing, current),
                created=created, create_fields=fields_for("keys", "create"), edit_fields=fields_for("keys", "edit"))


@router.post("/keys/{token}/{action}")
async def key_action(request: Request, session: SessionDep, token: str, action: str) -> Response:
    fields = await form_of(request, session)
    runtime = runtime_of(request)
    try:
        if action == "regenerate":
            rotated = await keys.regenerate(session.caller, runtime, KeyRegenerate(
                key=token, grace_period=optional(fields, "grace_period")))
            return await _keys_with_secret(request, session, rotated)
        if action == "update":
            await keys.update(KeyUpdate(key=token, **values("keys", "edit", fields)), session.caller, runtime)
        elif action in ("block", "unblock"):
            await (keys.block if action == "block" else keys.unblock)(KeyRef(key=token), session.caller, runtime)
        elif action == "delete":
            await keys.delete(KeyDelete(keys=[token]), session.caller, runtime)
        else:
            return back("/ui/keys", error=f"unknown action {action!r}")
    except (ProxyError, ValueError) as exc:
        return back("/ui/keys", error=message_of(exc))
    return back("/ui/keys", flash=f"key {action}d" if action != "update" else "key updated")


# -- models ------------------------------------------------------------------------------------------------
@router.get("/models")
async def models_page(request: Request, session: SessionDep) -> HTMLResponse:
    runtime = runtime_of(request)
    plan, states = runtime.router.plan, runtime.router.deployment_states()
    now = datetime.now(UTC)
    recent = await in_thread(runtime.store.deployment_activity, now - timedelta(minutes=15))
    cooled = {m.id: runtime.router.state.cooled_until(m.id) for g in plan.groups.values() for m in g.members}
    groups = []
    for alias, group in plan.groups.items():
        if group.alias != alias:
            continue
        rows = []
        for member in group.members:
            n, errors, latency = recent.get(member.id, (0, 0, 0.0))
            until = cooled.get(member.id, 0.0)
            rows.append({"id": member.id, "provider": member.deployment.provider.name,
                         "model": member.deployment.model, "state": states.get(member.id, "healthy"),
                         "cooldown_left": max(0.0, until - now.timestamp()), "requests": n,
                         "error_rate": errors / n if n else None, "latency": latency if n else None,
                         "rpm": member.rpm, "tpm": member.tpm})
        groups.append({"alias": alias, "hidden": alias in plan.hidden_aliases, "deployments": rows,
                       "fallbacks": plan.fallbacks.get(alias, [])})
    return page(request, "models.html", session, groups=groups)


# -- logs --------------------------------------------------------------------------------------------------
@router.get("/logs")
async def logs_page(request: Request, session: SessionDep, key: str | None = None, team: str | None = None,
                    end_user: str | None = None, model: str | None = None, status: str | None = None,
                    since: str | None = None, until: str | None = None,
                    p: int = Query(1, ge=1, le=100_000)) -> HTMLResponse:
    runtime = runtime_of(request)
    error = None
    filters = {"key": key, "team": team, "end_user": end_user, "model": model, "status": status,
               "since": since, "until": until}
    try:
        start, end = day_bound(since), day_bound(until, end=True)
        key_hash = None
        if key:
            record = await in_thread(runtime.store.get_key_by_alias, key)
            key_hash = record.token if record is not None else keys.digest_of(key)
        rows, total = await in_thread(
            runtime.store.spend_logs, api_key_hash=key_hash, end_user=end_user or None, model=model or None,
            team_id=team or None, failed={"ok": False, "error": True}.get(status or ""), start=start, end=end,
            page=p, size=PAGE_SIZE)
    except (ProxyError, ValueError) as exc:
        rows, total, error = [], 0, message_of(exc)
    paging = paging_of({"total_count": total, "total_pages": max(1, -(-total // PAGE_SIZE))}, p)
    shown = {k: v for k, v in filters.items() if v}
    return page(request, "logs.html", session, rows=[as_dict(r) for r in rows], filters=filters, paging=paging,
                filter_error=error, total=total, query_for=lambda n: urlencode({**shown, "p": n}))


@router.get("/logs/{request_id}")
async def log_detail(request: Request, session: SessionDep, request_id: str) -> HTMLResponse:
    record = await in_thread(runtime_of(request).store.spend_log, request_id)
    if record is None:
        return page(request, "log.html", session, status=404, row=None, request_id=request_id)
    row = {k: v for k, v in as_dict(record).items() if k != "key_hash"}
    return page(request, "log.html", session, row=row, request_id=request_id)
