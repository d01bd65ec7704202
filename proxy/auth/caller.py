"""Who is calling: the master key, a virtual key, or anyone (when no master key is configured)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import AuthenticationError, PermissionDeniedError, StoreUnavailableError
from ..spend.records import KeyRecord
from .keys import hash_key, same_key

log = logging.getLogger("proxy.auth")


@dataclass(frozen=True, slots=True)
class Caller:
    key_hash: str | None = None
    key_alias: str | None = None
    user_id: str | None = None
    is_admin: bool = False
    models: tuple[str, ...] = ()
    """Aliases this key may call; empty means all."""
    record: KeyRecord | None = None
    """The stored key record (budgets, limits, guardrails, fallbacks), None for the master key."""
    metadata: dict[str, Any] = field(default_factory=dict)
    team: Any = None
    """The key's team record (its models, budget and limits apply too), if it has one."""
    user: Any = None
    """The key owner's internal-user record, if `user_id` names one."""
    team_models: tuple[str, ...] = ()
    user_models: tuple[str, ...] = ()

    def may_use(self, alias: str) -> bool:
        """The key, its team and its user must each allow `alias` (an empty list allows every model)."""
        return self.refused_by(alias) is None

    def refused_by(self, alias: str) -> str | None:
        """Who does not allow `alias`: "this key", "team 'x'" or "user 'y'"; None when all allow it."""
        if self.is_admin:
            return None
        if self.models and alias not in self.models:
            return "this key"
        if self.team_models and alias not in self.team_models:
            return f"team '{self.team.team_id}'"
        if self.user_models and alias not in self.user_models:
            return f"user '{self.user_id}'"
        return None


ANONYMOUS_ADMIN = Caller(is_admin=True, key_alias="open-access")


class Authenticator:
    """Bearer → SHA-256 → short TTL cache → database; keeps serving cached keys while the DB is down."""

    def __init__(self, store: Any, master_key: str | None, ttl: float = 30.0, max_entries: int = 100_000):
        self._store = store
        self._max_entries = max_entries
        self._master_key = master_key
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Caller | None]] = {}
        """digest → (fresh until, the Caller built once from the key's record, or None for an unknown key)."""
        self._master = Caller(is_admin=True, key_alias="master_key")

    @property
    def open_access(self) -> bool:
        return self._master_key is None

    def forget(self, key_hash: str) -> None:
        self._cache.pop(key_hash, None)

    def forget_all(self) -> None:
        """Drop every cached key (a team or user changed: the keys that carry it must reload)."""
        self._cache.clear()

    async def authenticate(self, authorization: str | None) -> Caller:
        if self._master_key is None:
            return ANONYMOUS_ADMIN
        key = _bearer(authorization)
        if same_key(key, self._master_key):
            return self._master
        caller = await self._lookup(hash_key(key))
        if caller is None:
            raise AuthenticationError("invalid api key")
        record = caller.record
        assert record is not None  # every cached Caller of a virtual key is built from its record
        if record.blocked:
            raise PermissionDeniedError("this key is blocked")
        if caller.team is not None and caller.team.blocked:
            raise PermissionDeniedError(f"this key's team '{caller.team.team_id}' is blocked")
        if record.expires is not None and _aware(record.expires) <= datetime.now(UTC):
            raise PermissionDeniedError("this key has expired")
        return caller

    async def _lookup(self, digest: str) -> Caller | None:
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            found = await asyncio.to_thread(self._store.key_with_owners, digest)
        except Exception as exc:  # the DB is down: a key we knew keeps working
            if cached is not None:
                log.warning("key lookup failed (%s); serving the cached key", type(exc).__name__)
                return cached[1]
            raise StoreUnavailableError() from None
        if len(self._cache) >= self._max_entries:  # bounded: unknown keys must not grow it forever
            self._cache.pop(next(iter(self._cache)))
        caller = None if found is None else _caller(*found)
        self._cache[digest] = (now + self._ttl, caller)
        return caller


def _caller(record: Any, team: Any, user: Any) -> Caller:
    """The Caller of a key record; `key_hash` is the key's current digest even when the caller presented the
    secret it replaced (within its grace period), so spend and limits land on the one key."""
    return Caller(key_hash=record.token, key_alias=record.key_alias, user_id=record.user_id,
                  models=tuple(record.models or ()), record=record, metadata=record.metadata or {}, team=team,
                  user=user, team_models=tuple(team.models or ()) if team is not None else (),
                  user_models=tuple(user.models or ()) if user is not None else ())


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationError("no api key supplied; send 'Authorization: Bearer <key>'")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("invalid authorization header; send 'Authorization: Bearer <key>'")
    return token
