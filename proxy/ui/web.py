"""What every UI page shares: the templates, the signed-in check, form parsing and rendering.

Pages are server-rendered (Jinja2, autoescaped); forms post back with a CSRF token and a redirect follows
(post/redirect/get), so the UI works without JavaScript. Every change a form makes goes through the same
admin API function curl reaches, so the API's checks, limits and audit trail apply unchanged.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import Depends
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..api.deps import get_admin
from ..api.runtime import Runtime
from ..auth.caller import Caller
from ..auth.roles import PROXY_ADMIN
from ..errors import PermissionDeniedError, ProxyError
from .admin_keys import session_caller
from .session import COOKIE, Session, Sessions
from .sign_in_limits import SignInLimits

HERE = Path(__file__).parent
MAX_FORM_BYTES = 64 * 1024
PAGE_SIZE = 50
UI_CALLER = Caller(is_admin=True, key_alias="master_key (ui)", role=PROXY_ADMIN)
"""Who the audit log names for a change made in the UI signed in with the master key."""

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                        trim_blocks=True, lstrip_blocks=True)


class SignInRequired(Exception):
    """No valid session: the page answers with a redirect to the sign-in form."""


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


def sessions_of(request: Request) -> Sessions | None:
    """The session signer, or None when no master key is set (then every request is allowed anyway)."""
    runtime = runtime_of(request)
    sessions = getattr(request.app.state, "ui_sessions", None)
    if sessions is None and runtime.settings.master_key:
        sessions = request.app.state.ui_sessions = Sessions(runtime.settings.master_key)
    return sessions


def sign_in_limits_of(request: Request) -> SignInLimits:
    """The failed sign-in counts, shared through the process's Redis link when there is one, on the app's
    clock (which tests pin)."""
    limits = getattr(request.app.state, "ui_sign_in_limits", None)
    if limits is None:
        governance = runtime_of(request).governance
        clock = governance.clock
        limits = request.app.state.ui_sign_in_limits = SignInLimits(lambda: clock().timestamp(), governance.link)
    return limits


def client_address(request: Request) -> str:
    """The TCP peer, or X-Forwarded-For's client when uvicorn trusts the peer (`FORWARDED_ALLOW_IPS`)."""
    return request.client.host if request.client else "unknown"


async def signed_in(request: Request) -> Session:
    """The session, with who acts in it; a key session's key is checked again on every page."""
    sessions = sessions_of(request)
    if sessions is None:
        return Session(nonce="open-access", expires=0, csrf="open-access", caller=UI_CALLER)
    session = sessions.read(request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired()
    if not session.key_id:
        return replace(session, caller=UI_CALLER)
    caller = await session_caller(runtime_of(request), sessions, session)
    if caller is None:  # deleted, blocked, rotated or no longer an admin: signed out
        raise SignInRequired()
    return replace(session, caller=caller)


SessionDep = Annotated[Session, Depends(signed_in)]


async def read_form(request: Request) -> dict[str, str]:
    """The posted urlencoded form, read at most MAX_FORM_BYTES (403 beyond: never read whole first)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PermissionDeniedError("form too large")
    return {k: v[-1] for k, v in parse_qs(body.decode(errors="replace"), keep_blank_values=True).items()}


async def form_of(request: Request, session: Session, *, change: bool = True) -> dict[str, str]:
    """The posted form (urlencoded, at most MAX_FORM_BYTES), after its CSRF token was checked; a form that
    `change`s something is refused (403) to a read-only (proxy_admin_viewer) session."""
    if change:
        await get_admin(session.caller)
    fields = await read_form(request)
    sessions = sessions_of(request)
    if sessions is not None and not sessions.check_csrf(session, fields.get("csrf")):
        raise PermissionDeniedError("the form has expired or did not come from this page: reload it and try again")
    return fields


def page(request: Request, template: str, session: Session, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(template).render(
        request=request, csrf=session.csrf, open_access=sessions_of(request) is None,
        read_only=session.caller is not None and not session.caller.may_administer,
        signed_in_as=session.caller.key_alias if session.key_id else None,
        flash=request.query_params.get("flash"), error=request.query_params.get("error"), **context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def back(path: str, *, flash: str | None = None, error: str | None = None) -> RedirectResponse:
    """Post/redirect/get: back to `path` with a one-line message."""
    query = urlencode({k: v for k, v in (("flash", flash), ("error", error)) if v})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


def message_of(exc: Exception) -> str:
    """What a refused form or filter says on the page: an API error's message, each field a body model
    refused (`field: why`), or a parse error's text."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
                         for e in exc.errors(include_url=False))
    return exc.message if isinstance(exc, ProxyError) else str(exc)


def day_bound(value: str | None, *, end: bool = False) -> datetime | None:
    """A `YYYY-MM-DD` filter as the start of that UTC day, or with `end` the start of the next (inclusive)."""
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"dates are YYYY-MM-DD, got {value!r}") from None
    return day + timedelta(days=1) if end else day


def paging_of(listing: dict[str, Any], current: int) -> dict[str, Any]:
    pages = int(listing.get("total_pages") or 1)
    return {"page": current, "pages": pages, "total": listing.get("total_count"),
            "previous": current - 1 if current > 1 else None, "next": current + 1 if current < pages else None}


def optional(fields: dict[str, str], name: str) -> str | None:
    value = fields.get(name, "").strip()
    return value or None


SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def login_redirect() -> Response:
    return RedirectResponse("/ui/login", status_code=303)
