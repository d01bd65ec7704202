"""The audit trail of admin changes: `audited` records one (never a secret), `GET /audit/logs` reads them."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import APIRouter

from ..auth.caller import Caller
from .admin_types import ADMIN_RESPONSES, Page, PageSize, QueryName, QueryTime
from .deps import AdminReaderDep, RuntimeDep
from .runtime import Runtime
from .store_access import as_dict, in_thread

router = APIRouter(tags=["audit"], responses=ADMIN_RESPONSES)
log = logging.getLogger("proxy.audit")

SECRET_FIELDS = frozenset({"key", "token", "previous_token"})
"""Never stored in the audit log: the plain key and the digests a key is looked up by."""


def _clean(record: Any) -> dict[str, Any] | None:
    if record is None:
        return None
    values = as_dict(record)
    return {k: v for k, v in values.items() if k not in SECRET_FIELDS}


async def audited(runtime: Runtime, caller: Caller, action: str, table_name: str, object_id: str,
                  before: Any = None, after: Any = None) -> None:
    """Record one admin change (`action`: created, updated, deleted, blocked, rotated, ...). The change has
    already happened: a failure to record it is logged, never turned into a failed admin call."""
    try:
        await in_thread(runtime.store.record_change, changed_by=caller.audit_name, action=action,
                        table_name=table_name, object_id=object_id, before=_clean(before), after=_clean(after))
    except Exception as exc:
        log.warning("audit record for %s %s failed (%s)", table_name, action, type(exc).__name__)


@router.get("/audit/logs")
async def audit_logs(_: AdminReaderDep, runtime: RuntimeDep, changed_by: QueryName = None, action: QueryName = None,
                     table_name: QueryName = None, object_id: QueryName = None,
                     start_date: QueryTime = None, end_date: QueryTime = None,
                     page: Page = 1, page_size: PageSize = 50) -> dict[str, Any]:
    records, total = await in_thread(runtime.store.audit_logs, changed_by=changed_by, action=action,
                                     table_name=table_name, object_id=object_id, start=start_date, end=end_date,
                                     page=page, size=page_size)
    return {"audit_logs": [as_dict(r) for r in records], "total": total, "page": page, "page_size": page_size,
            "total_pages": max(1, math.ceil(total / page_size))}
