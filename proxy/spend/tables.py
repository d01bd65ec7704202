"""The database schema as SQLAlchemy Core tables: the one source the migrations are checked against.

Portable across SQLite and PostgreSQL. Money is `Numeric(20, 10)` (exact on PostgreSQL; SQLite stores a
double, so totals there are exact to ~15 significant digits). Timestamps are timezone-aware UTC on the way
in and out on both backends (`UTCDateTime`). Keys are stored only as their SHA-256 hex digest.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.types import TypeDecorator

from .latency import COLUMNS as LATENCY_COLUMNS

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """`DateTime(timezone=True)` that only accepts aware datetimes and always returns aware UTC ones.

    SQLite has no time zone storage: values are converted to UTC and stored naive, in one fixed format,
    so string comparison there orders them correctly.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware (UTC) datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def Money() -> Numeric[Any]:
    return Numeric(20, 10)


def Json() -> JSON:
    """JSON where Python `None` is SQL NULL (not the JSON literal `null`)."""
    return JSON(none_as_null=True)


ZERO = text("0")

verification_tokens = Table(
    "verification_tokens",
    metadata,
    Column("token", String(64), primary_key=True),  # SHA-256 hex digest of the key; the key is never stored
    Column("key_alias", String, nullable=True),
    Column("key_name", String, nullable=True),
    Column("user_id", String, nullable=True),
    Column("models", Json(), nullable=False),
    Column("expires", UTCDateTime(), nullable=True),
    Column("blocked", Boolean, nullable=False, server_default=false()),
    Column("metadata", Json(), nullable=False),
    Column("spend", Money(), nullable=False, server_default=ZERO),
    Column("max_budget", Money(), nullable=True),
    Column("budget_duration", String, nullable=True),
    Column("budget_reset_at", UTCDateTime(), nullable=True),
    Column("rpm_limit", Integer, nullable=True),
    Column("tpm_limit", Integer, nullable=True),
    Column("max_parallel_requests", Integer, nullable=True),
    Column("model_rpm_limit", Json(), nullable=True),
    Column("guardrails", Json(), nullable=True),
    Column("fallbacks", Json(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("key_id", String, nullable=False),  # migration 0003: stable across /key/regenerate
    Column("team_id", String, nullable=True),
    Column("tags", Json(), nullable=True),
    Column("previous_token", String(64), nullable=True),  # the digest /key/regenerate replaced
    Column("previous_token_expires", UTCDateTime(), nullable=True),  # ... accepted until then
    UniqueConstraint("key_alias"),
    UniqueConstraint("key_id"),
    UniqueConstraint("previous_token"),
    Index(None, "user_id"),
    Index(None, "team_id"),
)

key_digests = Table(  # migration 0011
    "key_digests",
    metadata,
    Column("token", String(64), primary_key=True),
    Column("key_id", String, primary_key=True),
    Index(None, "key_id"),
)
"""Every digest each key has had (written when it is created and rotated), so `/spend/logs?api_key=` finds
a key's rows from before its rotations through the `key_hash` index: an index on `spend_logs.key_id` cost
every spend row a seventh B-tree. A digest can be listed under two keys (a rotated-away secret reused)."""

end_users = Table(
    "end_users",
    metadata,
    Column("user_id", String, primary_key=True),
    Column("alias", String, nullable=True),
    Column("spend", Money(), nullable=False, server_default=ZERO),
    Column("max_budget", Money(), nullable=True),
    Column("budget_duration", String, nullable=True),
    Column("budget_reset_at", UTCDateTime(), nullable=True),
    Column("rpm_limit", Integer, nullable=True),
    Column("max_parallel_requests", Integer, nullable=True),
    Column("blocked", Boolean, nullable=False, server_default=false()),
    Column("metadata", Json(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("tpm_limit", Integer, nullable=True),  # migration 0002
)

spend_logs = Table(
    "spend_logs",
    metadata,
    Column("request_id", String, primary_key=True),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("key_hash", String(64), nullable=True),
    Column("key_alias", String, nullable=True),
    Column("user_id", String, nullable=True),
    Column("end_user", String, nullable=True),
    Column("model_alias", String, nullable=False),
    Column("deployment", String, nullable=True),
    Column("provider", String, nullable=True),
    Column("provider_model", String, nullable=True),
    Column("search_units", Float, nullable=False, server_default=ZERO),
    Column("input_tokens", Integer, nullable=True),
    Column("total_tokens", Integer, nullable=True),
    Column("cost", Money(), nullable=False, server_default=ZERO),
    Column("latency_ms", Float, nullable=False),
    Column("status", Integer, nullable=False),
    Column("error_class", String, nullable=True),
    Column("fallback_used", Boolean, nullable=False, server_default=false()),
    Column("guardrails", Json(), nullable=True),
    Column("metadata", Json(), nullable=True),
    Column("key_id", String, nullable=True),  # migration 0003
    Column("team_id", String, nullable=True),
    Column("tags", Json(), nullable=True),
    Column("cache", String(8), nullable=True),  # migration 0004: hit | partial | miss (NULL: not consulted)
    Column("cost_saved", Money(), nullable=False, server_default=ZERO),  # migration 0004
    Index(None, "started_at"),
    Index(None, "key_hash"),
    Index(None, "end_user"),
    Index(None, "model_alias"),
)

proxy_spend = Table(
    "proxy_spend",
    metadata,
    Column("name", String, primary_key=True),
    Column("spend", Money(), nullable=False, server_default=ZERO),
    Column("max_budget", Money(), nullable=True),
    Column("budget_duration", String, nullable=True),
    Column("budget_reset_at", UTCDateTime(), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
)

proxy_models = Table(
    "proxy_models",
    metadata,
    Column("model_id", String, primary_key=True),
    Column("model_name", String, nullable=False),
    Column("litellm_params", Text, nullable=False),  # a Fernet token of the JSON: provider keys never in clear
    Column("model_info", Json(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

config_revisions = Table(
    "config_revisions",
    metadata,
    Column("name", String, primary_key=True),
    Column("revision", Integer, nullable=False, server_default=ZERO),
)
"""One counter per kind of stored config ("models"), raised in the transaction of every change: each
process compares it with the one it last loaded, so a change made on any replica reaches all of them.
The "keys" row is raised by every key change too, for its row lock (see `key_changes`)."""

key_changes = Table(
    "key_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token", Text, nullable=False),  # what some process may have cached: evict it from `kind`'s cache
    Column("changed_at", UTCDateTime(), nullable=False),
    Column("kind", String, nullable=False, server_default=text("'key'")),  # migration 0010
    Index(None, "changed_at"),
)
"""Migration 0008: one row per cached record an admin change touched, written in the change's own transaction
after locking `config_revisions["keys"]`, so ids become visible in id order; each process reads `id >` the
last it applied and evicts those records from its caches. Migration 0010 added `kind` ("key": `token` is a
key digest; "end_user": an end-user id; "tag": a tag name) and widened `token` to text. The table and column
keep their names so a replica not yet upgraded keeps logging key changes (as kind "key") during a rollout."""

PROXY_ROW = "proxy"


def _budgeted() -> list[Column[Any]]:
    """The columns every budget holder (team, internal user, tag) has, as keys and end users do."""
    return [
        Column("spend", Money(), nullable=False, server_default=ZERO),
        Column("max_budget", Money(), nullable=True),
        Column("budget_duration", String, nullable=True),
        Column("budget_reset_at", UTCDateTime(), nullable=True),
        Column("rpm_limit", Integer, nullable=True),
        Column("tpm_limit", Integer, nullable=True),
        Column("max_parallel_requests", Integer, nullable=True),
        Column("metadata", Json(), nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
    ]


teams = Table(
    "teams",
    metadata,
    Column("team_id", String, primary_key=True),
    Column("team_alias", String, nullable=True),
    Column("models", Json(), nullable=False),
    Column("tags", Json(), nullable=True),
    Column("blocked", Boolean, nullable=False, server_default=false()),
    *_budgeted(),
)

internal_users = Table(
    "internal_users",
    metadata,
    Column("user_id", String, primary_key=True),
    Column("user_alias", String, nullable=True),
    Column("user_email", String, nullable=True),
    Column("user_role", String, nullable=True),
    Column("models", Json(), nullable=False),
    *_budgeted(),
)

team_memberships = Table(
    "team_memberships",
    metadata,
    Column("team_id", String, ForeignKey("teams.team_id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String, ForeignKey("internal_users.user_id", ondelete="CASCADE"), primary_key=True),
    Column("role", String, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "user_id"),
)

tags = Table(
    "tags",
    metadata,
    Column("tag_name", String, primary_key=True),
    Column("description", String, nullable=True),
    Column("models", Json(), nullable=True),
    *_budgeted(),
)

ROLLUP_DIMENSIONS = ("key_id", "team_id", "user_id", "end_user", "model_alias", "deployment", "provider")
"""What the rollups group by besides the hour (and the tag); '' stands for none (NULLs would not collide in the
key). Every admin dimension is in one key, so a report can group and filter by any combination of them."""
MODEL_DIMENSIONS = ("model_alias", "deployment", "provider")
"""What `spend_model_rollups` keeps: a few rows an hour, for the admin UI's charts and reports by model only."""


def _rollup_measures() -> list[Column[Any]]:
    return [
        Column("requests", Integer, nullable=False, server_default=ZERO),
        Column("errors", Integer, nullable=False, server_default=ZERO),
        Column("spend", Money(), nullable=False, server_default=ZERO),
        Column("search_units", Float, nullable=False, server_default=ZERO),
        Column("input_tokens", BigInteger, nullable=False, server_default=ZERO),
        Column("total_tokens", BigInteger, nullable=False, server_default=ZERO),
        Column("cost_saved", Money(), nullable=False, server_default=ZERO),  # the result cache's savings
        # requests per latency bucket (proxy.spend.latency)
        *(Column(name, Integer, nullable=False, server_default=ZERO) for name in LATENCY_COLUMNS),
    ]


spend_rollups = Table(  # migration 0007: hourly, every dimension (end_user included)
    "spend_rollups",
    metadata,
    Column("bucket", UTCDateTime(), primary_key=True),  # the UTC hour the requests started in
    *(Column(name, String, primary_key=True) for name in ROLLUP_DIMENSIONS),
    *_rollup_measures(),
)

spend_model_rollups = Table(  # migration 0009: spend_rollups summed over all but the model's dimensions
    "spend_model_rollups",
    metadata,
    Column("bucket", UTCDateTime(), primary_key=True),
    *(Column(name, String, primary_key=True) for name in MODEL_DIMENSIONS),
    *_rollup_measures(),
)

spend_tag_rollups = Table(  # migration 0007: as spend_rollups, once per tag of the request
    "spend_tag_rollups",
    metadata,
    Column("bucket", UTCDateTime(), primary_key=True),
    Column("tag", String, primary_key=True),
    *(Column(name, String, primary_key=True) for name in ROLLUP_DIMENSIONS),
    *_rollup_measures(),
)

audit_logs = Table(
    "audit_logs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("changed_by", String, nullable=False),
    Column("action", String, nullable=False),
    Column("table_name", String, nullable=False),
    Column("object_id", String, nullable=False),
    Column("before_value", Json(), nullable=True),
    Column("updated_values", Json(), nullable=True),
    Index(None, "updated_at"),
    Index(None, "table_name", "object_id"),
)
