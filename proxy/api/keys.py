"""Virtual keys: `/key/generate`, `/key/info`, `/key/list`, `/key/update`, `/key/delete`, `/key/block`,
`/key/unblock`; every change is audited."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter

from ..auth.caller import Caller
from ..auth.keys import display_name, generate_key, hash_key, looks_like_hash
from ..errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from ..spend.durations import parse_duration
from ..spend.holders import TEAM
from .admin_models import KeyDelete, KeyFields, KeyGenerate, KeyRef, KeyRegenerate, KeyUpdate
from .admin_types import ADMIN_RESPONSES, Page, PageSize, QueryKey, QueryName
from .audit import audited
from .deps import AdminDep, AdminReaderDep, CallerDep, RuntimeDep
from .runtime import Runtime
from .store_access import as_dict, budget_view, in_thread

router = APIRouter(tags=["keys"], responses=ADMIN_RESPONSES)


def digest_of(key: str) -> str:
    """Accept a plain key or its stored hash, as LiteLLM does."""
    return key if looks_like_hash(key) else hash_key(key)


def _fields(body: KeyFields, now: datetime) -> dict[str, Any]:
    fields = body.model_dump(exclude_none=True, exclude={"key", "duration", "new_key", "grace_period"})
    if body.duration:
        fields["expires"] = parse_duration(body.duration).after(now)
    return fields  # the store starts the budget period when budget_duration is set


async def _check_team(runtime: Runtime, team_id: str | None) -> None:
    if team_id is not None and await in_thread(runtime.store.get_holder, TEAM, team_id) is None:
        raise InvalidRequestError(f"team_id: team '{team_id}' does not exist; create it with /team/new")


def _check_guardrails(runtime: Runtime, names: list[str] | None) -> None:
    unknown = runtime.governance.chain.unknown(names or ())
    if unknown:
        raise InvalidRequestError(f"unknown guardrail(s): {', '.join(unknown)}; configure them under 'guardrails'")


@router.post("/key/generate")
async def generate(body: KeyGenerate, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    key = body.key or generate_key()
    _check_guardrails(runtime, body.guardrails)
    await _check_team(runtime, body.team_id)
    record = await in_thread(runtime.store.create_key, hash_key(key), key_name=display_name(key),
                             **_fields(body, datetime.now(UTC)))
    await runtime.records_changed()  # a chosen secret may be cached as unknown
    await audited(runtime, caller, "created", "verification_tokens", record.key_id, after=record)
    info = budget_view(record)
    return {**info, "key": key, "token": hash_key(key)}


@router.get("/key/info")
async def info(caller: CallerDep, runtime: RuntimeDep, key: QueryKey = None) -> dict[str, Any]:
    if key is None:
        if caller.key_hash is None:
            raise InvalidRequestError("pass ?key=<key> (the master key has no key record)")
        digest = caller.key_hash
    else:
        digest = digest_of(key)
    if not caller.may_read_admin and digest != caller.key_hash:
        raise PermissionDeniedError(f"a key with role '{caller.role or 'none'}' may only read its own info")
    record = await in_thread(runtime.store.get_key, digest)
    if record is None:
        raise NotFoundError("key not found")
    info = budget_view(record)
    await runtime.governance.describe_key(info, record)  # live spend, remaining budget, current reset time
    return {"key": digest, "info": info}


@router.get("/key/list")
async def list_keys(_: AdminReaderDep, runtime: RuntimeDep, page: Page = 1, size: PageSize = 100,
                    user_id: QueryName = None, key_alias: QueryName = None, team_id: QueryName = None,
                    return_full_object: bool = False) -> dict[str, Any]:
    records, total = await in_thread(runtime.store.list_keys, user_id=user_id, key_alias=key_alias,
                                     team_id=team_id, page=page, size=size)
    keys = [budget_view(r) for r in records] if return_full_object else [as_dict(r)["token"] for r in records]
    return {"keys": keys, "total_count": total, "current_page": page,
            "total_pages": max(1, math.ceil(total / size))}


@router.post("/key/update")
async def update(body: KeyUpdate, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    digest = digest_of(body.key)
    _check_guardrails(runtime, body.guardrails)
    await _check_team(runtime, body.team_id)
    before = await in_thread(runtime.store.get_key, digest)
    record = await in_thread(runtime.store.update_key, digest, **_fields(body, datetime.now(UTC)))
    if record is None:
        raise NotFoundError("key not found")
    await runtime.records_changed()
    await audited(runtime, caller, "updated", "verification_tokens", record.key_id, before=before, after=record)
    return {"key": digest, **budget_view(record)}


@router.post("/key/delete")
async def delete(body: KeyDelete, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    digests = [digest_of(k) for k in body.keys or []]
    for alias in body.key_aliases or []:
        record = await in_thread(runtime.store.get_key_by_alias, alias)
        if record is not None:
            digests.append(as_dict(record)["token"])
    if not digests:
        raise InvalidRequestError("pass 'keys' or 'key_aliases' to delete")
    existing = [r for r in [await in_thread(runtime.store.get_key, d) for d in digests] if r is not None]
    await in_thread(runtime.store.delete_keys, digests)
    await runtime.records_changed()
    for record in existing:
        await audited(runtime, caller, "deleted", "verification_tokens", record.key_id, before=record)
    return {"deleted_keys": [*(body.keys or []), *(body.key_aliases or [])]}


@router.post("/key/regenerate")
@router.post("/key/{key}/regenerate")
async def regenerate(caller: AdminDep, runtime: RuntimeDep, body: KeyRegenerate | None = None,
                     key: str | None = None) -> dict[str, Any]:
    """A new secret for the same key (same `key_id`, spend, budgets and history); with `grace_period` the old
    secret keeps working that long."""
    body = body or KeyRegenerate()
    target = key or body.key
    if target is None:
        raise InvalidRequestError("pass the key to regenerate as 'key' or in the path /key/{key}/regenerate")
    digest = digest_of(target)
    before = await in_thread(runtime.store.get_key, digest)
    if before is None:
        raise NotFoundError("key not found")
    _check_guardrails(runtime, body.guardrails)
    await _check_team(runtime, body.team_id)
    now = datetime.now(UTC)
    secret = body.new_key or generate_key()
    grace = parse_duration(body.grace_period).after(now) if body.grace_period else None
    record = await in_thread(runtime.store.rotate_key, digest, hash_key(secret), grace_until=grace, now=now,
                             key_name=display_name(secret), **_fields(body, now))
    if record is None:
        raise NotFoundError("key not found")
    await runtime.records_changed()
    await audited(runtime, caller, "rotated", "verification_tokens", record.key_id, before=before, after=record)
    return {**budget_view(record), "key": secret, "token": record.token, "token_id": record.key_id}


async def _set_blocked(body: KeyRef, caller: Caller, runtime: Runtime, blocked: bool) -> dict[str, Any]:
    digest = digest_of(body.key)
    before = await in_thread(runtime.store.get_key, digest)
    record = await in_thread(runtime.store.set_blocked, digest, blocked)
    if record is None:
        raise NotFoundError("key not found")
    await runtime.records_changed()
    await audited(runtime, caller, "blocked" if blocked else "unblocked", "verification_tokens", record.key_id,
                  before=before, after=record)
    return {"key": digest, **budget_view(record)}


@router.post("/key/block")
async def block(body: KeyRef, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    return await _set_blocked(body, caller, runtime, True)


@router.post("/key/unblock")
async def unblock(body: KeyRef, caller: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    return await _set_blocked(body, caller, runtime, False)
