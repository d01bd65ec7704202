"""`KeyChanges`: the log of key digests admin changes touched, which every process polls to evict its cache.

`record_key_changes` runs inside the change's own transaction, so a change and its log row commit together.
It first raises `config_revisions["keys"]`: that row lock makes key-changing transactions take their ids one
after another, so they commit in id order and a reader that saw id n has seen every id below it (without it,
PostgreSQL could commit id 6 before id 5, and a poller past 6 would never see 5).
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


def record_key_changes(connection: Connection, insert: Any, now: datetime, *, where: Any = None,
                       tokens: Iterable[str] = ()) -> None:
    """Log the digests of the keys matching `where` (current and grace-period ones) and `tokens`."""
    bump(connection, insert, KEYS)
    digests = list(tokens)
    if where is not None:
        for column in (verification_tokens.c.token, verification_tokens.c.previous_token):
            digests += connection.execute(select(column).where(where, column.is_not(None))).scalars()
    rows = [{"token": digest, "changed_at": now} for digest in dict.fromkeys(digests)]
    if rows:
        connection.execute(key_changes.insert(), rows)


class KeyChanges(Transactions):
    def last_key_change(self) -> int:
        """The newest change id (0 when none): where a starting process begins reading."""
        with self._read() as connection:
            return int(connection.execute(select(func.max(key_changes.c.id))).scalar_one() or 0)

    def key_changes_after(self, last_id: int, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` (id, digest) pairs with id > `last_id`, oldest first."""
        with self._read() as connection:
            rows = connection.execute(select(key_changes.c.id, key_changes.c.token)
                                      .where(key_changes.c.id > last_id).order_by(key_changes.c.id).limit(limit))
            return [(int(ident), token) for ident, token in rows]

    def prune_key_changes(self, before: datetime) -> int:
        """Delete the change rows older than `before`; returns how many."""
        check_aware(before)
        with self._write() as connection:
            return int(connection.execute(delete(key_changes).where(key_changes.c.changed_at < before)).rowcount)
