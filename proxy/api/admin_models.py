"""Admin request bodies, with LiteLLM's field names so existing admin scripts keep working."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
