"""`KeyChanges`: the log of cached records admin changes touched — key digests, end-user ids and tag names —
which every process polls to evict them from its caches.

`record_changes` runs inside the change's own transaction, so a change and its log rows commit together.
It first raises `config_revisions["keys"]`: that row lock makes changing transactions take their ids one
after another, so they commit in id order and a reader that saw id n has seen every id below it (without it,
PostgreSQL could commit id 6 before id 5, and a poller past 6 would never see 5). Callers log before they
write, so every such transaction takes that lock before any row lock (no lock-order deadlocks between them).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select

from .stored_models import bump
from .tables import key_changes, verification_tokens
from .transactions import Transactions, check_aware

KEYS = "keys"
"""The `config_revisions` row whose lock orders the log (named before end-users and tags joined it; renaming
it would let replicas of two versions interleave ids during a rollout)."""
KEY, END_USER, TAG = "key", "end_user", "tag"
"""Kinds of logged records: whose cache a row's `token` is evicted from."""


def record_changes(connection: Connection, insert: Any, now: datetime, kind: str, idents: Iterable[str]) -> None:
    """Log `idents` (end-user ids, tag names or key digests, per `kind`) for eviction in every process."""
    bump(connection, insert, KEYS)
    rows = [{"kind": kind, "token": ident, "changed_at": now} for ident in dict.fromkeys(idents)]
    if rows:
        connection.execute(key_changes.insert(), rows)


def record_key_changes(connection: Connection, insert: Any, now: datetime, *, where: Any = None,
                       tokens: Iterable[str] = ()) -> None:
    """Log the digests of the keys matching `where` (current and grace-period ones) and `tokens`."""
    digests = list(tokens)
    if where is not None:
        rows = connection.execute(select(verification_tokens.c.token, verification_tokens.c.previous_token)
                                  .where(where))
        digests += [digest for row in rows for digest in row if digest is not None]
    record_changes(connection, insert, now, KEY, digests)


class KeyChanges(Transactions):
    def last_change(self) -> int:
        """The newest change id (0 when none): where a starting process begins reading."""
        with self._read() as connection:
            return int(connection.execute(select(func.max(key_changes.c.id))).scalar_one() or 0)

    def changes_after(self, last_id: int, limit: int) -> list[tuple[int, str, str]]:
        """Up to `limit` (id, kind, token) rows with id > `last_id`, oldest first."""
        c = key_changes.c
        with self._read() as connection:
            rows = connection.execute(select(c.id, c.kind, c.token).where(c.id > last_id).order_by(c.id).limit(limit))
            return [(int(ident), kind, token) for ident, kind, token in rows]

    def prune_changes(self, before: datetime) -> int:
        """Delete the change rows older than `before`, but never the newest (SQLite would hand its id out
        again, and every process past it would skip the new rows); returns how many."""
        check_aware(before)
        c = key_changes.c
        with self._write() as connection:
            newest = select(func.max(c.id)).scalar_subquery()
            return int(connection.execute(delete(key_changes).where(c.changed_at < before, c.id < newest)).rowcount)
