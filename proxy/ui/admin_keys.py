"""Signing in to the admin UI with an admin key, and checking on every page that the key still may.

A key may sign in when its internal user is a proxy_admin (every page and form) or a proxy_admin_viewer
(pages only: its forms are hidden and a POST answers 403). Each page re-reads the key by its `key_id`, one
indexed read through the database gate (so with its deadline): deleted, blocked, expired, rotated (its
digest no longer matches the session's binding), its team blocked or its user no longer an admin, and the
session is over at the next page, on every replica.
"""

from __future__ import annotations

import hmac
from dataclasses import replace
from typing import Any

from ..auth.caller import Caller, check_usable, key_caller
from ..auth.keys import hash_key
from ..errors import PermissionDeniedError
from .session import Session, Sessions

NOT_A_KEY = "That is not the master key or an admin key."
DATABASE_DOWN = "The database did not answer, so an admin key cannot be checked now; the master key still works."


async def sign_in_key(runtime: Any, given: str) -> tuple[Caller | None, str]:
    """(the UI caller, "") for a key that may use the UI, else (None, why not)."""
    digest = hash_key(given)
    found = await runtime.gate.fetch(("ui-sign-in", digest), runtime.store.key_with_owners, digest)
    if found is None or found[0].token != digest:  # a replaced secret does not sign in, even in its grace period
        return None, NOT_A_KEY
    caller = key_caller(*found)
    try:
        check_usable(caller)
    except PermissionDeniedError as exc:
        return None, exc.message[:1].upper() + exc.message[1:] + "."
    if not caller.may_read_admin:
        return None, (f"This key's role is '{caller.role or 'none'}': the admin UI needs the master key or the key "
                      "of a proxy_admin or proxy_admin_viewer user.")
    return ui_caller(caller), ""


async def session_caller(runtime: Any, sessions: Sessions, session: Session) -> Caller | None:
    """The caller of a key session whose key still may use the UI; None when the session is over."""
    found = await runtime.gate.fetch(("ui-session", session.key_id), runtime.store.key_with_owners_by_id,
                                     session.key_id)
    if found is None or not hmac.compare_digest(sessions.binding(found[0].token), session.binding):
        return None
    caller = key_caller(*found)
    try:
        check_usable(caller)
    except PermissionDeniedError:
        return None
    return ui_caller(caller) if caller.may_read_admin else None


def ui_caller(caller: Caller) -> Caller:
    """The key's caller, named in the audit log as "<alias or key_id> (ui)"."""
    return replace(caller, key_alias=f"{caller.audit_name} (ui)")
