"""The audit page: `GET /audit/logs` filtered and paged, each change shown as a field-by-field diff.

It reads through the admin API's own route function, so it sees exactly what `curl /audit/logs` sees: the
audit trail never holds a secret (`api/audit.py` drops them before storing), and this page drops the same
fields again should an older row carry one.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..api import audit
from ..errors import ProxyError
from .web import PAGE_SIZE, UI_CALLER, SessionDep, day_bound, message_of, page, paging_of, runtime_of

router = APIRouter(prefix="/ui", include_in_schema=False)

TABLES = {"verification_tokens": "Keys", "teams": "Teams", "internal_users": "Users", "end_users": "End-users",
          "tags": "Tags", "proxy_models": "Models", "config": "Config"}
"""The tables the admin API audits, as the page names them (any other name can still be typed)."""
ACTIONS = ("created", "updated", "deleted", "blocked", "unblocked", "rotated", "member_added", "member_deleted",
           "reloaded")


@router.get("/audit")
async def audit_page(request: Request, session: SessionDep, who: str | None = None, table: str | None = None,
                     object_id: str | None = None, action: str | None = None, since: str | None = None,
                     until: str | None = None, p: int = Query(1, ge=1, le=100_000)) -> HTMLResponse:
    filters = {"who": who, "table": table, "object_id": object_id, "action": action, "since": since,
               "until": until}
    error, rows, total = None, [], 0
    try:
        answer = await audit.audit_logs(
            UI_CALLER, runtime_of(request), changed_by=who or None, action=action or None,
            table_name=table or None, object_id=object_id or None, start_date=day_bound(since),
            end_date=day_bound(until, end=True), page=p, page_size=PAGE_SIZE)
        rows, total = [_entry(r) for r in answer["audit_logs"]], answer["total"]
    except (ProxyError, ValueError) as exc:
        error = message_of(exc)
    paging = paging_of({"total_count": total, "total_pages": max(1, -(-total // PAGE_SIZE))}, p)
    shown = {k: v for k, v in filters.items() if v}
    return page(request, "audit.html", session, rows=rows, total=total, filters=filters, filter_error=error,
                paging=paging, tables=TABLES, actions=ACTIONS, query_for=lambda n: urlencode({**shown, "p": n}))


def _entry(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "table_label": TABLES.get(record["table_name"], record["table_name"]),
            "changes": diff(record.get("before_value"), record.get("updated_values"))}


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[dict[str, str | None]]:
    """The fields that differ, in name order: `{field, before, after}`, with None for "not there"; a
    creation lists what it set, a deletion what was removed (empty values left out of both)."""
    before, after = _visible(before), _visible(after)
    changes = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old == new or (_empty(old) and _empty(new)):
            continue
        changes.append({"field": name, "before": None if _empty(old) else _text(old),
                        "after": None if _empty(new) else _text(new)})
    return changes


def _visible(values: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (values or {}).items() if k not in audit.SECRET_FIELDS}


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {}


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)
