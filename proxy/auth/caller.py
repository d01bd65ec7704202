"""Who is calling: the master key, a virtual key, or anyone (when no master key is configured)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from ..errors import AuthenticationError, PermissionDeniedError, StoreUnavailableError
from ..spend.records import KeyRecord
from ..tags import configured_tags, merged
from ..ttl_cache import TtlCache
from .keys import hash_key, same_key
from .roles import ADMIN_READERS, PROXY_ADMIN

log = logging.getLogger("proxy.auth")


@dataclass(frozen=True, slots=True)
class Caller:
    key_hash: str | None = None
    key_alias: str | None = None
    user_id: str | None = None
    is_admin: bool = False
    """The master key (or open access): every route, every model."""
    role: str | None = None
    """The LiteLLM role this caller acts with (`roles.py`): the master key's is proxy_admin, a key's is its
    internal user's `user_role`."""
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
    tags: tuple[str, ...] = field(init=False, default=())
    """The key's and its team's own tags (`proxy.tags.configured_tags`), merged once here, not per request."""

    def __post_init__(self) -> None:
        if self.record is not None or self.team is not None:
            object.__setattr__(self, "tags", merged(configured_tags(self.record), configured_tags(self.team)))

    @property
    def may_administer(self) -> bool:
        """May call every admin route (the master key, or a key whose user is a proxy_admin)."""
        return self.role == PROXY_ADMIN

    @property
    def may_read_admin(self) -> bool:
        """May call the admin routes that only read (also a proxy_admin_viewer's key)."""
        return self.role in ADMIN_READERS

    @property
    def audit_name(self) -> str:
        """Who the audit log says made a change: the key's alias or key_id (never its secret or hash)."""
        if self.key_alias:
            return self.key_alias
        return getattr(self.record, "key_id", None) or "unknown"

    def may_use(self, alias: str) -> bool:
        """The key, its team and its user must each allow `alias` (an empty list allows every model)."""
        return self.is_admin or ((not self.models or alias in self.models)
                                 and (not self.team_models or alias in self.team_models)
                                 and (not self.user_models or alias in self.user_models))

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


ANONYMOUS_ADMIN = Caller(is_admin=True, key_alias="open-access", role=PROXY_ADMIN)
UNVERIFIED = Caller(key_alias="db-unavailable-fallback")
"""A key the unreachable database could not verify, allowed by `allow_requests_on_db_unavailable`: never
admin, no key limits or budget (LiteLLM's restricted fallback identity)."""


class Authenticator:
    """Bearer → SHA-256 → TTL cache → database, through the `DatabaseGate` (a read never outlasts its deadline).

    Known keys live in one LRU cache, unknown keys in a separate smaller one, so a flood of made-up keys
    cannot push out a key in use. When the database does not answer in time, a known key is served from
    its stale entry (at most `max_stale` seconds past its TTL) and refreshed in the background; a key we
    have never seen gets a fast 503, or, with `allow_unverified` (LiteLLM's
    `allow_requests_on_db_unavailable`), runs under a restricted identity with no key limits.
    """

    def __init__(self, gate: Any, master_key: str | None, ttl: float = 30.0, max_entries: int = 100_000, *,
                 max_stale: float = 900.0, unknown_entries: int = 10_000, allow_unverified: bool = False,
                 clock: Callable[[], float] = time.monotonic):
        self._gate = gate
        self._master_key = master_key
        self._known: TtlCache[str, Caller] = TtlCache(ttl, max_entries, max_stale=max_stale, clock=clock)
        self._unknown: TtlCache[str, None] = TtlCache(ttl, unknown_entries, clock=clock)
        self._allow_unverified = allow_unverified
        self._master = Caller(is_admin=True, key_alias="master_key", role=PROXY_ADMIN)
        self._evictions = 0
        """Counts `forget` calls: a read that started before one is not cached (it may predate the change)."""

    @property
    def open_access(self) -> bool:
        return self._master_key is None

    def forget(self, key_hash: str) -> None:
        """Evict one digest (an admin change touched it, on this process or another: `RecordSync`)."""
        self._evictions += 1
        self._known.forget(key_hash)
        self._unknown.forget(key_hash)

    async def authenticate(self, authorization: str | None) -> Caller:
        if self._master_key is None:
            return ANONYMOUS_ADMIN
        key = _bearer(authorization)
        if same_key(key, self._master_key):
            return self._master
        digest = hash_key(key)
        known = self._known.get(digest)
        # A fresh cached key, the common case, without `_lookup`'s coroutine.
        caller = known[0] if known is not None and known[1] else await self._lookup(digest)
        if caller is None:
            raise AuthenticationError("invalid api key")
        record = caller.record
        if record is None:  # unverified while the database is unreachable
            return caller
        if getattr(record, "previous_token", None) == digest and not _in_grace(record):  # cached past its grace
            raise AuthenticationError("invalid api key")
        check_usable(caller)
        return caller

    async def _lookup(self, digest: str) -> Caller | None:
        known = self._known.get(digest)
        if known is not None and known[1]:
            return known[0]
        if self._unknown.get(digest) is not None:
            return None
        future = self._gate.read(digest, self._gate.store.key_with_owners, digest,
                                 then=partial(self._remember, digest, self._evictions))
        if known is not None and (future is None or not self._gate.up):
            return known[0]  # the database is down or slow: the stale entry, refreshed when it answers
        try:
            if future is None:
                raise StoreUnavailableError()
            return await self._gate.wait(future)
        except StoreUnavailableError:
            if known is not None:  # (the gate logged the outage once)
                return known[0]
            if self._allow_unverified:
                return UNVERIFIED
            raise

    def _remember(self, digest: str, evictions: int, record: tuple[Any, Any, Any] | None) -> Caller | None:
        """Cache a read's answer (on the event loop), even when the caller that started it gave up waiting;
        not when a key was evicted while it ran (it may have read the row from before that change)."""
        if evictions != self._evictions:
            return None if record is None else key_caller(*record)
        if record is None:
            self._known.forget(digest)
            self._unknown.put(digest, None)
            return None
        caller = key_caller(*record)
        self._known.put(digest, caller)
        return caller


def key_caller(record: Any, team: Any, user: Any) -> Caller:
    """The Caller of a key record; `key_hash` is the key's current digest even when the caller presented the
    secret it replaced (within its grace period), so spend and limits land on the one key. Its role is its
    internal user's `user_role`."""
    return Caller(key_hash=record.token, key_alias=record.key_alias, user_id=record.user_id,
                  role=getattr(user, "user_role", None),
                  models=tuple(record.models or ()), record=record, metadata=record.metadata or {}, team=team,
                  user=user, team_models=tuple(team.models or ()) if team is not None else (),
                  user_models=tuple(user.models or ()) if user is not None else ())


def check_usable(caller: Caller) -> None:
    """PermissionDeniedError when the key, or its team, is blocked, or the key has expired."""
    record = caller.record
    if record is None:
        return
    if record.blocked:
        raise PermissionDeniedError("this key is blocked")
    if caller.team is not None and caller.team.blocked:
        raise PermissionDeniedError(f"this key's team '{caller.team.team_id}' is blocked")
    if record.expires is not None and _aware(record.expires) <= datetime.now(UTC):
        raise PermissionDeniedError("this key has expired")


def _in_grace(record: Any) -> bool:
    expires = record.previous_token_expires
    return expires is not None and _aware(expires) > datetime.now(UTC)


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
