"""Admin request bodies, with LiteLLM's field names so existing admin scripts keep working.

Every field is bounded by a type from `admin_types`, so its limits are in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .admin_types import (
    AdminBody,
    Budget,
    DurationText,
    Flag,
    FutureTime,
    KeyText,
    Limit,
    Metadata,
    Name,
    NameKey,
    Names,
    NewKey,
)


class KeyFields(AdminBody):
    key_alias: Name | None = None
    models: Names | None = None
    duration: DurationText | None = None
    """How long the key lives from now; sets `expires`."""
    expires: FutureTime | None = None
    metadata: Metadata | None = None
    user_id: Name | None = None
    max_budget: Budget | None = None
    budget_duration: DurationText | None = None
    rpm_limit: Limit | None = None
    tpm_limit: Limit | None = None
    max_parallel_requests: Limit | None = None
    model_rpm_limit: dict[NameKey, Limit] | None = Field(default=None, max_length=1_000)
    guardrails: Names | None = None
    fallbacks: list[Name | dict[NameKey, Names]] | None = Field(default=None, max_length=100)
    """Aliases tried when the requested one fails: `["b"]` for every alias, or `[{"a": ["b"]}]` per alias."""
    blocked: Flag | None = None
    team_id: Name | None = None
    tags: Names | None = None
    """Tags every request made with this key carries (LiteLLM also reads them from `metadata.tags`)."""


class KeyGenerate(KeyFields):
    key: NewKey | None = None
    """A caller-chosen key (must start with sk-); generated when absent."""


class KeyUpdate(KeyFields):
    key: KeyText


class KeyDelete(AdminBody):
    keys: list[KeyText] | None = Field(default=None, max_length=1_000)
    key_aliases: Names | None = None


class KeyRef(AdminBody):
    key: KeyText


class BudgetFields(AdminBody):
    """The budget and limits every holder (team, internal user, tag) has, as keys do."""

    max_budget: Budget | None = None
    budget_duration: DurationText | None = None
    rpm_limit: Limit | None = None
    tpm_limit: Limit | None = None
    max_parallel_requests: Limit | None = None
    metadata: Metadata | None = None


class CustomerFields(BudgetFields):
    alias: Name | None = None
    blocked: Flag | None = None


class CustomerNew(CustomerFields):
    user_id: Name


class CustomerUpdate(CustomerFields):
    user_id: Name


class CustomerIds(AdminBody):
    user_ids: Names


class Member(AdminBody):
    user_id: Name
    role: Literal["admin", "user"] = "user"


class TeamFields(BudgetFields):
    team_alias: Name | None = None
    models: Names | None = None
    tags: Names | None = None
    blocked: Flag | None = None


class TeamNew(TeamFields):
    team_id: Name | None = None
    members_with_roles: list[Member] | None = Field(default=None, max_length=1_000)


class TeamUpdate(TeamFields):
    team_id: Name


class TeamIds(AdminBody):
    team_ids: Names


class TeamRef(AdminBody):
    team_id: Name


class TeamMemberAdd(AdminBody):
    team_id: Name
    member: Member | Annotated[list[Member], Field(max_length=1_000)]


class TeamMemberDelete(AdminBody):
    team_id: Name
    user_id: Name


class UserFields(BudgetFields):
    user_alias: Name | None = None
    user_email: Name | None = None
    user_role: Literal["proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer"] | None = None
    """LiteLLM's roles; the user's keys act with it (`auth/roles.py`): proxy_admin may call every admin route,
    proxy_admin_viewer the ones that read."""
    models: Names | None = None


class UserNew(UserFields):
    user_id: Name | None = None
    teams: Names | None = None
    auto_create_key: Flag = True
    key_alias: Name | None = None
    duration: DurationText | None = None


class UserUpdate(UserFields):
    user_id: Name


class UserIds(AdminBody):
    user_ids: Names


class TagFields(BudgetFields):
    description: Annotated[str, Field(max_length=4096)] | None = None
    models: Names | None = None
    """When set, a request carrying the tag may only use these model aliases."""


class TagNew(TagFields):
    name: Name


class TagNames(AdminBody):
    names: Names


class TagName(AdminBody):
    name: Name


class KeyRegenerate(KeyFields):
    key: KeyText | None = None
    """The key to rotate (plain or its hash); or in the path, `/key/{key}/regenerate`."""
    new_key: NewKey | None = None
    """A caller-chosen new secret (must start with sk-); generated when absent."""
    grace_period: DurationText | None = None
    """How long the old secret keeps working, e.g. "24h"; it stops at once when absent."""
