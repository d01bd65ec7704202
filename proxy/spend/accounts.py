"""`Accounts`: keys and end users (their limits, budgets and running spend), and the periodic budget reset.

Keys are identified only by their SHA-256 hex digest: `create_key` refuses anything else, so a plain key
cannot reach the database by mistake. Records come back as frozen dataclasses whose fields are the columns.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from .durations import parse_duration
from .key_changes import END_USER, record_changes, record_key_changes
from .records import AlreadyExistsError, CustomerRecord, KeyRecord
from .tables import end_users, internal_users, key_digests, proxy_spend, tags, teams, verification_tokens
from .transactions import Transactions, check_aware, checked_fields, chunks, start_budget_period, utc_now

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_KEY_FIELDS = frozenset(verification_tokens.c.keys()) - {"token", "key_id", "created_at", "updated_at"}
_CUSTOMER_FIELDS = frozenset(end_users.c.keys()) - {"user_id", "created_at"}
_KEY_DEFAULTS: dict[str, Any] = {"models": [], "metadata": {}, "blocked": False, "spend": Decimal(0)}
_CUSTOMER_DEFAULTS: dict[str, Any] = {"metadata": {}, "blocked": False, "spend": Decimal(0)}


class Accounts(Transactions):
    # keys -----------------------------------------------------------------------------------------

    def create_key(self, token_hash: str, *, now: datetime | None = None, **fields: Any) -> KeyRecord:
        """Insert a key. `fields` are `KeyRecord` fields; a `budget_duration` without `budget_reset_at`
        starts its first period now. Raises AlreadyExistsError on a duplicate digest or alias."""
        _check_digest(token_hash)
        now = now or utc_now()
        values = {**_KEY_DEFAULTS, "key_id": uuid.uuid4().hex, **checked_fields(fields, _KEY_FIELDS)}
        start_budget_period(values, now)
        row = {**values, "token": token_hash, "created_at": now, "updated_at": now}
        try:
            with self._write() as connection:
                created = connection.execute(
                    insert(verification_tokens).values(row).returning(*verification_tokens.c)
                ).one()
                record_key_changes(connection, self._insert, now, tokens=[token_hash])  # cached as unknown?
                self._record_digest(connection, token_hash, values["key_id"])
        except IntegrityError as exc:
            raise AlreadyExistsError("a key with this token or key_alias already exists") from exc
        return KeyRecord(**created._mapping)

    def get_key(self, token_hash: str) -> KeyRecord | None:
        with self._read() as connection:
            row = connection.execute(
                select(verification_tokens).where(verification_tokens.c.token == token_hash)
            ).one_or_none()
        return None if row is None else KeyRecord(**row._mapping)

    def get_key_by_alias(self, alias: str) -> KeyRecord | None:
        with self._read() as connection:
            row = connection.execute(
                select(verification_tokens).where(verification_tokens.c.key_alias == alias)
            ).one_or_none()
        return None if row is None else KeyRecord(**row._mapping)

    def update_key(self, token_hash: str, *, now: datetime | None = None, **fields: Any) -> KeyRecord | None:
        """Change `fields` of a key; None when it does not exist. Setting `budget_duration` without
        `budget_reset_at` restarts the budget period now. AlreadyExistsError when the alias is taken."""
        return self._change_key(token_hash, checked_fields(fields, _KEY_FIELDS), now or utc_now())

    def _change_key(self, token_hash: str, values: dict[str, Any], now: datetime) -> KeyRecord | None:
        start_budget_period(values, now, restart=True)
        statement = (
            update(verification_tokens)
            .where(verification_tokens.c.token == token_hash)
            .values(**values, updated_at=now)
            .returning(*verification_tokens.c)
        )
        new_token = values.get("token")
        try:
            with self._write() as connection:
                record_key_changes(connection, self._insert, now, where=verification_tokens.c.token == token_hash,
                                   tokens=[new_token] if new_token else [])
                row = connection.execute(statement).one_or_none()
                if new_token and row is not None:
                    self._record_digest(connection, new_token, row.key_id)
        except IntegrityError as exc:
            raise AlreadyExistsError("a key with this key_alias already exists") from exc
        return None if row is None else KeyRecord(**row._mapping)

    def _record_digest(self, connection: Any, token_hash: str, key_id: str) -> None:
        """Remember that the key had this digest, for `Activity.spend_logs` (see `key_digests`)."""
        connection.execute(self._insert(key_digests).values(token=token_hash, key_id=key_id).on_conflict_do_nothing())

    def rotate_key(self, token_hash: str, new_hash: str, *, grace_until: datetime | None = None,
                   now: datetime | None = None, **fields: Any) -> KeyRecord | None:
        """Give a key a new secret (digest `new_hash`), keeping its `key_id`, spend, budgets and history; the
        old secret keeps working until `grace_until` (not at all when None). None when there is no such key."""
        _check_digest(new_hash)
        check_aware(grace_until)
        values = {**checked_fields(fields, _KEY_FIELDS), "token": new_hash,
                  "previous_token": token_hash if grace_until is not None else None,
                  "previous_token_expires": grace_until}
        return self._change_key(token_hash, values, now or utc_now())

    def set_blocked(self, token_hash: str, blocked: bool) -> KeyRecord | None:
        return self.update_key(token_hash, blocked=blocked)

    def delete_keys(self, token_hashes: Iterable[str], *, now: datetime | None = None) -> int:
        """Delete keys by digest; returns how many existed. Their spend logs are kept."""
        unique, now = list(dict.fromkeys(token_hashes)), now or utc_now()
        deleted = 0
        with self._write() as connection:
            for chunk in chunks(unique):
                where = verification_tokens.c.token.in_(chunk)
                record_key_changes(connection, self._insert, now, where=where)
                deleted += connection.execute(delete(verification_tokens).where(where)).rowcount
        return deleted

    def list_keys(
        self, *, user_id: str | None = None, key_alias: str | None = None, team_id: str | None = None,
        page: int = 1, size: int = 100
    ) -> tuple[list[KeyRecord], int]:
        """One page (1-based) of keys, oldest first, and the total matching the filters."""
        conditions = [] if team_id is None else [verification_tokens.c.team_id == team_id]
        if user_id is not None:
            conditions.append(verification_tokens.c.user_id == user_id)
        if key_alias is not None:
            conditions.append(verification_tokens.c.key_alias == key_alias)
        order = (verification_tokens.c.created_at, verification_tokens.c.token)
        rows, total = self._page(verification_tokens, conditions, order, page, size)
        return [KeyRecord(**row) for row in rows], total

    def key_spend(self, token_hash: str) -> Decimal | None:
        """The key's running spend; None when there is no such key."""
        with self._read() as connection:
            return connection.execute(
                select(verification_tokens.c.spend).where(verification_tokens.c.token == token_hash)
            ).scalar_one_or_none()

    # end users ------------------------------------------------------------------------------------

    def create_customer(self, user_id: str, *, now: datetime | None = None, **fields: Any) -> CustomerRecord:
        """Insert an end user; AlreadyExistsError when `user_id` exists (e.g. was seen in traffic)."""
        now = now or utc_now()
        values = {**_CUSTOMER_DEFAULTS, **checked_fields(fields, _CUSTOMER_FIELDS)}
        start_budget_period(values, now)
        try:
            with self._write() as connection:
                record_changes(connection, self._insert, now, END_USER, [user_id])  # cached as unknown
                row = connection.execute(
                    insert(end_users)
                    .values(**values, user_id=user_id, created_at=now)
                    .returning(*end_users.c)
                ).one()
        except IntegrityError as exc:
            raise AlreadyExistsError("an end user with this user_id already exists") from exc
        return CustomerRecord(**row._mapping)

    def get_customer(self, user_id: str) -> CustomerRecord | None:
        with self._read() as connection:
            row = connection.execute(select(end_users).where(end_users.c.user_id == user_id)).one_or_none()
        return None if row is None else CustomerRecord(**row._mapping)

    def update_customer(
        self, user_id: str, *, now: datetime | None = None, **fields: Any
    ) -> CustomerRecord | None:
        """Change `fields` of an end user; None when it does not exist."""
        values, now = checked_fields(fields, _CUSTOMER_FIELDS), now or utc_now()
        start_budget_period(values, now, restart=True)
        if not values:
            return self.get_customer(user_id)
        with self._write() as connection:
            record_changes(connection, self._insert, now, END_USER, [user_id])
            row = connection.execute(
                update(end_users)
                .where(end_users.c.user_id == user_id)
                .values(**values)
                .returning(*end_users.c)
            ).one_or_none()
        return None if row is None else CustomerRecord(**row._mapping)

    def list_customers(self, page: int = 1, size: int = 100) -> tuple[list[CustomerRecord], int]:
        """One page (1-based) of end users ordered by id, and the total."""
        rows, total = self._page(end_users, [], (end_users.c.user_id,), page, size)
        return [CustomerRecord(**row) for row in rows], total

    def delete_customers(self, user_ids: Iterable[str], *, now: datetime | None = None) -> int:
        """Delete end users; returns how many existed. Their spend logs are kept."""
        unique, now = list(dict.fromkeys(user_ids)), now or utc_now()
        deleted = 0
        with self._write() as connection:
            for chunk in chunks(unique):
                record_changes(connection, self._insert, now, END_USER, chunk)
                deleted += connection.execute(delete(end_users).where(end_users.c.user_id.in_(chunk))).rowcount
        return deleted

    def set_customers_blocked(self, user_ids: Iterable[str], blocked: bool, *, now: datetime | None = None) -> None:
        """Block or unblock end users in one transaction, creating the ones never seen."""
        unique, now = list(dict.fromkeys(user_ids)), now or utc_now()
        with self._write() as connection:
            for chunk in chunks(unique):
                record_changes(connection, self._insert, now, END_USER, chunk)
                known = set(connection.execute(
                    update(end_users).where(end_users.c.user_id.in_(chunk)).values(blocked=blocked)
                    .returning(end_users.c.user_id)).scalars())
                new = [{**_CUSTOMER_DEFAULTS, "user_id": user_id, "blocked": blocked, "created_at": now}
                       for user_id in chunk if user_id not in known]
                if new:
                    connection.execute(insert(end_users), new)

    def end_user_spend(self, user_id: str) -> Decimal | None:
        """The end user's running spend; None when never seen."""
        with self._read() as connection:
            return connection.execute(
                select(end_users.c.spend).where(end_users.c.user_id == user_id)
            ).scalar_one_or_none()

    # budget periods -------------------------------------------------------------------------------

    def reset_budgets(self, now: datetime | None = None) -> dict[str, int]:
        """Zero the spend of every key, end user and proxy total whose `budget_reset_at` has passed, and
        move `budget_reset_at` forward by whole `budget_duration`s to the first moment after `now` (cleared
        when there is no duration). Safe to run from several workers: a row is reset once per period.
        Returns how many rows were reset per table: {"keys": n, "end_users": n, "proxy": n, "teams": n, ...}."""
        now = now or utc_now()
        check_aware(now)
        counts = {}
        with self._write() as connection:
            for name, table, pk in (
                ("keys", verification_tokens, verification_tokens.c.token),
                ("end_users", end_users, end_users.c.user_id),
                ("proxy", proxy_spend, proxy_spend.c.name),
                ("teams", teams, teams.c.team_id),
                ("users", internal_users, internal_users.c.user_id),
                ("tags", tags, tags.c.tag_name),
            ):
                due = connection.execute(
                    select(pk, table.c.budget_reset_at, table.c.budget_duration)
                    .where(table.c.budget_reset_at.is_not(None), table.c.budget_reset_at <= now)
                    .order_by(pk)
                ).all()
                changes = [
                    {
                        "id": ident,
                        "old": reset_at,
                        "new": parse_duration(duration).next_after(reset_at, now) if duration else None,
                    }
                    for ident, reset_at, duration in due
                ]
                if changes:
                    statement = (
                        update(table)
                        .where(pk == bindparam("id"), table.c.budget_reset_at == bindparam("old"))
                        .values(spend=0, budget_reset_at=bindparam("new"))
                    )
                    connection.execute(statement, changes)
                counts[name] = len(changes)
        return counts


def _check_digest(token_hash: str) -> None:
    if not isinstance(token_hash, str) or not _DIGEST.match(token_hash):
        raise ValueError("token_hash must be a key's SHA-256 hex digest (64 lowercase hex characters)")
