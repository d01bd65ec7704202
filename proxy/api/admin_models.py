"""Admin request bodies, with LiteLLM's field names so existing admin scripts keep working."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, field_validator

from ..spend.durations import parse_duration


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _check_duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


class KeyFields(_Body):
    key_alias: str | None = None
    models: list[str] | None = None
    duration: str | None = None
    expires: datetime | None = None
    metadata: dict[str, Any] | None = None
    user_id: str | None = None
    max_budget: float | None = Field(default=None, ge=0)
    budget_duration: str | None = None
    rpm_limit: NonNegativeInt | None = None
    tpm_limit: NonNegativeInt | None = None
    max_parallel_requests: NonNegativeInt | None = None
    model_rpm_limit: dict[str, NonNegativeInt] | None = None
    guardrails: list[str] | None = None
    fallbacks: list[str | dict[str, list[str]]] | None = None
    """Aliases tried when the requested one fails: `["b"]` for every alias, or `[{"a": ["b"]}]` per alias."""
    blocked: bool | None = None
    team_id: str | None = None
    tags: list[str] | None = None
    """Tags every request made with this key carries (LiteLLM also reads them from `metadata.tags`)."""

    _durations = field_validator("duration", "budget_duration")(classmethod(lambda cls, v: _check_duration(v)))


class KeyGenerate(KeyFields):
    key: str | None = None
    """A caller-chosen key (must start with sk-); generated when absent."""


class KeyUpdate(KeyFields):
    key: str


class KeyDelete(_Body):
    keys: list[str] | None = None
    key_aliases: list[str] | None = None


class KeyRef(_Body):
    key: str


class CustomerFields(_Body):
    alias: str | None = None
    max_budget: float | None = Field(default=None, ge=0)
    budget_duration: str | None = None
    rpm_limit: NonNegativeInt | None = None
    tpm_limit: NonNegativeInt | None = None
    max_parallel_requests: NonNegativeInt | None = None
    blocked: bool | None = None
    metadata: dict[str, Any] | None = None

    _durations = field_validator("budget_duration")(classmethod(lambda cls, v: _check_duration(v)))


class CustomerNew(CustomerFields):
    user_id: str


class CustomerUpdate(CustomerFields):
    user_id: str


class CustomerIds(_Body):
    user_ids: list[str]


class BudgetFields(_Body):
    """The budget and limits every holder (team, internal user, tag) has, as keys do."""

    max_budget: float | None = Field(default=None, ge=0)
    budget_duration: str | None = None
    rpm_limit: NonNegativeInt | None = None
    tpm_limit: NonNegativeInt | None = None
    max_parallel_requests: NonNegativeInt | None = None
    metadata: dict[str, Any] | None = None

    _durations = field_validator("budget_duration")(classmethod(lambda cls, v: _check_duration(v)))


class Member(_Body):
    user_id: str
    role: Literal["admin", "user"] = "user"


class TeamFields(BudgetFields):
    team_alias: str | None = None
    models: list[str] | None = None
    tags: list[str] | None = None
    blocked: bool | None = None


class TeamNew(TeamFields):
    team_id: str | None = None
    members_with_roles: list[Member] | None = None


class TeamUpdate(TeamFields):
    team_id: str


class TeamIds(_Body):
    team_ids: list[str]


class TeamRef(_Body):
    team_id: str


class TeamMemberAdd(_Body):
    team_id: str
    member: Member | list[Member]


class TeamMemberDelete(_Body):
    team_id: str
    user_id: str


class UserFields(BudgetFields):
    user_alias: str | None = None
    user_email: str | None = None
    user_role: Literal["internal_user"] | None = None
    """Only "internal_user": admin rights come from the master key here, not from a user's role."""
    models: list[str] | None = None


class UserNew(UserFields):
    user_id: str | None = None
    teams: list[str] | None = None
    auto_create_key: bool = True
    key_alias: str | None = None
    duration: str | None = None

    _key_duration = field_validator("duration")(classmethod(lambda cls, v: _check_duration(v)))


class UserUpdate(UserFields):
    user_id: str


class UserIds(_Body):
    user_ids: list[str]
