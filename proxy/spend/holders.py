"""`Holders`: teams, internal users, their memberships and tags — the budget holders above a key.

Each is a row with the same budget columns as a key (spend, max_budget, budget_duration, limits), so one set
of generic methods serves all three; the running spend is added by the spend writer (`Ledger`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from .key_changes import TAG as TAG_CHANGE
from .key_changes import record_changes, record_key_changes
from .records import AlreadyExistsError, KeyRecord, MembershipRecord, TagRecord, TeamRecord, UserRecord
from .tables import internal_users, tags, team_memberships, teams, verification_tokens
from .transactions import Transactions, checked_fields, chunks, start_budget_period, utc_now


@dataclass(frozen=True, slots=True)
class Kind:
    table: Table
    pk: str
    record: type
    defaults: tuple[tuple[str, Any], ...]
    noun: str
    owns_keys: str | None = None
    """The key column naming this holder, when cached keys carry it (their cache entries are evicted)."""
    cached_as: str | None = None
    """The change-log kind, when processes cache the holder's own record (tags: evicted by name)."""

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(self.table.c.keys()) - {self.pk, "created_at", "updated_at"}


TEAM = Kind(teams, "team_id", TeamRecord, (("models", []), ("blocked", False)), "team", "team_id")
USER = Kind(internal_users, "user_id", UserRecord, (("models", []),), "user", "user_id")
TAG = Kind(tags, "tag_name", TagRecord, (), "tag", cached_as=TAG_CHANGE)


class Holders(Transactions):
    def create_holder(self, kind: Kind, ident: str, *, now: datetime | None = None, **fields: Any) -> Any:
        """Insert a team, user or tag; AlreadyExistsError when `ident` exists."""
        now = now or utc_now()
        values = {"metadata": {}, "spend": Decimal(0), **dict(kind.defaults), **checked_fields(fields, kind.fields)}
        start_budget_period(values, now)
        row = {**values, kind.pk: ident, "created_at": now, "updated_at": now}
        try:
            with self._write() as connection:
                self._changed(connection, kind, [ident], now)  # a tag may be cached as unknown
                created = connection.execute(insert(kind.table).values(row).returning(*kind.table.c)).one()
        except IntegrityError as exc:
            raise AlreadyExistsError(f"a {kind.noun} '{ident}' already exists") from exc
        return kind.record(**created._mapping)

    def get_holder(self, kind: Kind, ident: str) -> Any:
        with self._read() as connection:
            row = connection.execute(
                select(kind.table).where(kind.table.c[kind.pk] == ident)).one_or_none()
        return None if row is None else kind.record(**row._mapping)

    def get_holders(self, kind: Kind, idents: Iterable[str]) -> list[Any]:
        """The rows that exist among `idents`, in `idents` order."""
        wanted = list(dict.fromkeys(idents))
        found: dict[str, Any] = {}
        with self._read() as connection:
            for chunk in chunks(wanted):
                for row in connection.execute(select(kind.table).where(kind.table.c[kind.pk].in_(chunk))):
                    found[row._mapping[kind.pk]] = kind.record(**row._mapping)
        return [found[i] for i in wanted if i in found]

    def update_holder(self, kind: Kind, ident: str, *, now: datetime | None = None, **fields: Any) -> Any:
        """Change `fields`; None when it does not exist. A new `budget_duration` restarts the period now."""
        now = now or utc_now()
        values = checked_fields(fields, kind.fields)
        start_budget_period(values, now, restart=True)
        with self._write() as connection:
            self._changed(connection, kind, [ident], now)
            row = connection.execute(
                update(kind.table).where(kind.table.c[kind.pk] == ident).values(**values, updated_at=now)
                .returning(*kind.table.c)).one_or_none()
        return None if row is None else kind.record(**row._mapping)

    def delete_holders(self, kind: Kind, idents: Iterable[str], *, now: datetime | None = None) -> int:
        """Delete rows (memberships go with them); returns how many existed. Spend logs are kept."""
        deleted, now = 0, now or utc_now()
        with self._write() as connection:
            for chunk in chunks(list(dict.fromkeys(idents))):
                self._changed(connection, kind, chunk, now)
                deleted += connection.execute(delete(kind.table).where(kind.table.c[kind.pk].in_(chunk))).rowcount
        return deleted

    def _changed(self, connection: Any, kind: Kind, idents: Sequence[str], now: datetime) -> None:
        """Log what processes cache of these holders for eviction everywhere: the keys that carry a team or
        user record, a tag's own record. Called before the write, so the log's lock comes first."""
        if kind.owns_keys is not None:
            record_key_changes(connection, self._insert, now, where=verification_tokens.c[kind.owns_keys].in_(idents))
        if kind.cached_as is not None:
            record_changes(connection, self._insert, now, kind.cached_as, idents)

    def list_holders(self, kind: Kind, *, idents: list[str] | None = None, page: int = 1,
                     size: int = 100) -> tuple[list[Any], int]:
        """One page (1-based) ordered by id, and the total."""
        conditions = [] if idents is None else [kind.table.c[kind.pk].in_(idents)]
        rows, total = self._page(kind.table, conditions, (kind.table.c[kind.pk],), page, size)
        return [kind.record(**row) for row in rows], total

    def key_with_owners(self, token_hash: str, now: datetime | None = None) -> tuple[Any, Any, Any] | None:
        """(key, its team, its internal user) for a key's digest — or for the digest `/key/regenerate`
        replaced, until its grace period ends; None for an unknown key. One read transaction."""
        now = now or utc_now()
        keys = verification_tokens
        with self._read() as connection:
            row = connection.execute(select(keys).where(keys.c.token == token_hash)).one_or_none()
            if row is None:
                row = connection.execute(select(keys).where(
                    keys.c.previous_token == token_hash, keys.c.previous_token_expires > now)).one_or_none()
            return None if row is None else _with_owners(connection, row)

    def key_with_owners_by_id(self, key_id: str) -> tuple[Any, Any, Any] | None:
        """(key, its team, its internal user) for a key's stable `key_id`; None when there is none."""
        with self._read() as connection:
            row = connection.execute(select(verification_tokens).where(
                verification_tokens.c.key_id == key_id)).one_or_none()
            return None if row is None else _with_owners(connection, row)

    # memberships ---------------------------------------------------------------------------------

    def add_members(self, team_id: str, members: list[tuple[str, str]], *, now: datetime | None = None
                    ) -> list[MembershipRecord]:
        """Put (user_id, role) pairs in a team, creating internal users not seen before; a member already
        in the team gets the new role. Raises LookupError when the team does not exist."""
        now = now or utc_now()
        upsert_user = self._insert(internal_users).on_conflict_do_nothing(index_elements=["user_id"])
        upsert_member = self._insert(team_memberships)
        upsert_member = upsert_member.on_conflict_do_update(
            index_elements=["team_id", "user_id"], set_={"role": upsert_member.excluded.role})
        with self._write() as connection:
            if connection.execute(select(teams.c.team_id).where(teams.c.team_id == team_id)).first() is None:
                raise LookupError(f"team '{team_id}' not found")
            for user_id, role in members:
                connection.execute(upsert_user.values(
                    user_id=user_id, models=[], metadata={}, spend=Decimal(0), created_at=now, updated_at=now))
                connection.execute(upsert_member.values(team_id=team_id, user_id=user_id, role=role,
                                                        created_at=now))
            rows = connection.execute(select(team_memberships).where(
                team_memberships.c.team_id == team_id,
                team_memberships.c.user_id.in_([u for u, _ in members]))).all()
        return [MembershipRecord(**row._mapping) for row in rows]

    def remove_members(self, team_id: str, user_ids: Iterable[str]) -> int:
        with self._write() as connection:
            return connection.execute(delete(team_memberships).where(
                team_memberships.c.team_id == team_id, team_memberships.c.user_id.in_(list(user_ids)))).rowcount

    def memberships(self, *, team_id: str | None = None, user_id: str | None = None) -> list[MembershipRecord]:
        c = team_memberships.c
        conditions = [c.team_id == team_id] if team_id is not None else []
        if user_id is not None:
            conditions.append(c.user_id == user_id)
        with self._read() as connection:
            rows = connection.execute(select(team_memberships).where(*conditions)
                                      .order_by(c.team_id, c.user_id)).all()
        return [MembershipRecord(**row._mapping) for row in rows]


def _with_owners(connection: Any, row: Any) -> tuple[Any, Any, Any]:
    key = KeyRecord(**row._mapping)
    owners = []
    for kind, ident in ((TEAM, key.team_id), (USER, key.user_id)):
        found = None if ident is None else connection.execute(
            select(kind.table).where(kind.table.c[kind.pk] == ident)).one_or_none()
        owners.append(None if found is None else kind.record(**found._mapping))
    return key, owners[0], owners[1]
