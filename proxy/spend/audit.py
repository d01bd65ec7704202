"""`Audit`: the append-only record of admin changes (who, what, before, after) and its filtered reading."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert

from .records import AuditRecord
from .tables import audit_logs
from .transactions import Transactions, check_aware, utc_now


class Audit(Transactions):
    def record_change(self, *, changed_by: str, action: str, table_name: str, object_id: str,
                      before: dict[str, Any] | None, after: dict[str, Any] | None,
                      now: datetime | None = None) -> None:
        with self._write() as connection:
            connection.execute(insert(audit_logs).values(
                updated_at=now or utc_now(), changed_by=changed_by, action=action, table_name=table_name,
                object_id=object_id, before_value=before, updated_values=after))

    def audit_logs(self, *, changed_by: str | None = None, action: str | None = None,
                   table_name: str | None = None, object_id: str | None = None, start: datetime | None = None,
                   end: datetime | None = None, page: int = 1, size: int = 100) -> tuple[list[AuditRecord], int]:
        """One page of changes, newest first; `start` inclusive, `end` exclusive."""
        check_aware(start)
        check_aware(end)
        c = audit_logs.c
        conditions = [column == value for column, value in (
            (c.changed_by, changed_by), (c.action, action), (c.table_name, table_name), (c.object_id, object_id))
            if value is not None]
        if start is not None:
            conditions.append(c.updated_at >= start)
        if end is not None:
            conditions.append(c.updated_at < end)
        rows, total = self._page(audit_logs, conditions, (c.updated_at.desc(), c.id.desc()), page, size)
        return [AuditRecord(**row) for row in rows], total
