"""The UI's create and edit forms, described once per kind: each field's API name, label and input kind.

The templates draw the inputs from these lists and `values` turns a posted form back into the API body's
fields, named as the admin API names them, so the body model (`KeyGenerate`, `TeamNew`, ...) checks them
exactly as it checks a curl request. An empty input means "not given": on an edit form, "leave as it is".
An edit form also carries each input's shown value (`was.<name>`), and only the fields the admin changed are
sent: re-sending an unchanged `budget_duration` would restart the budget period, an unchanged past `expires`
would be refused.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..api.admin_models import UserFields


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str = "text"
    """text, names (comma separated), money, int, duration, json (an object), when (a date-time), choice,
    flag (a checkbox) or members (`user_id` or `user_id:role`, comma separated)."""
    on: str = "both"
    """Which forms show it: "create", "edit" or "both"."""
    options: tuple[str, ...] = ()
    whole: bool = False
    """A list edited whole: on an edit form an empty input means "none", not "leave as it is"."""

    def shown(self, record: dict[str, Any] | None) -> Any:
        """The input's current value on an edit form."""
        value = (record or {}).get(self.name)
        if self.kind == "flag":
            return "on" if value else ""
        if value is None:
            return ""
        if self.kind == "names":
            return ", ".join(value)
        if self.kind == "json":
            return json.dumps(value) if value else ""
        if self.kind == "when":
            return value.strftime("%Y-%m-%dT%H:%M") if isinstance(value, datetime) else str(value)[:16]
        if self.kind == "members":
            return ", ".join(m["user_id"] if m.get("role") == "user" else f"{m['user_id']}:{m['role']}"
                             for m in value)
        return value


LIMITS = (
    Field("max_budget", "Budget (USD)", "money"),
    Field("budget_duration", "Budget period (e.g. 30d)", "duration"),
    Field("rpm_limit", "Requests per minute", "int"),
    Field("tpm_limit", "Tokens per minute", "int"),
    Field("max_parallel_requests", "Parallel requests", "int"),
)
METADATA = Field("metadata", "Metadata (a JSON object)", "json")

KEY = (
    Field("key_alias", "Alias"),
    Field("team_id", "Team id"),
    Field("user_id", "User id"),
    Field("models", "Models (comma separated, empty: all)", "names"),
    Field("tags", "Tags (comma separated)", "names"),
    *LIMITS,
    Field("duration", "Expires after (e.g. 90d)", "duration"),
    Field("expires", "Or expires at (UTC)", "when"),
    METADATA,
)
TEAM = (
    Field("team_id", "Id (generated when empty)", on="create"),
    Field("team_alias", "Name"),
    Field("models", "Models (comma separated, empty: all)", "names"),
    Field("tags", "Tags (comma separated)", "names"),
    *LIMITS,
    Field("members_with_roles", "Members (user id or id:admin, comma separated)", "members", whole=True),
    METADATA,
)


def _literals(annotation: Any) -> tuple[str, ...]:
    """The strings a `Literal[...]` annotation (possibly inside `| None`) allows."""
    if typing.get_origin(annotation) is typing.Literal:
        return tuple(str(a) for a in typing.get_args(annotation))
    return tuple(v for arg in typing.get_args(annotation) for v in _literals(arg))


USER_ROLES = _literals(typing.get_type_hints(UserFields)["user_role"])
"""The roles `/user/new` accepts, read from its body model so a role added there appears here."""
USER = (
    Field("user_id", "Id (generated when empty)", on="create"),
    Field("user_alias", "Name"),
    Field("user_email", "Email"),
    Field("user_role", "Role", "choice" if USER_ROLES else "text", options=USER_ROLES),
    Field("models", "Models (comma separated, empty: all)", "names"),
    Field("teams", "Teams (comma separated team ids)", "names", whole=True),
    *LIMITS,
    METADATA,
    Field("auto_create_key", "Also create a key (shown once)", "flag", on="create"),
)
CUSTOMER = (
    Field("user_id", "End-user id", on="create"),
    Field("alias", "Name"),
    *LIMITS,
    Field("blocked", "Blocked", "flag"),
    METADATA,
)
TAG = (
    Field("name", "Name", on="create"),
    Field("description", "Description"),
    Field("models", "Models this tag may use (comma separated, empty: all)", "names"),
    *LIMITS,
    METADATA,
)
FORMS = {"keys": KEY, "teams": TEAM, "users": USER, "customers": CUSTOMER, "tags": TAG}


def fields_for(kind: str, form: str) -> list[Field]:
    return [f for f in FORMS[kind] if f.on in (form, "both")]


def values(kind: str, form: str, posted: dict[str, str]) -> dict[str, Any]:
    """The API fields a posted form gives (ValueError, with the field's label, for one that does not parse)."""
    given: dict[str, Any] = {}
    for spec in fields_for(kind, form):
        raw = posted.get(spec.name, "").strip()
        was = posted.get(f"was.{spec.name}")
        if form == "edit" and was is not None and raw == was.strip():
            continue  # shown and left alone
        if spec.kind == "flag":
            if form == "edit" or raw:  # an edit form always says; an unticked create box leaves the default
                given[spec.name] = raw == "on"
            continue
        if not raw:
            if spec.whole and form == "edit":
                given[spec.name] = []
            continue
        try:
            given[spec.name] = _parse(spec, raw)
        except ValueError as exc:
            raise ValueError(f"{spec.label}: {exc}") from None
    return given


def _parse(spec: Field, raw: str) -> Any:
    if spec.kind == "names":
        return [part.strip() for part in raw.split(",") if part.strip()]
    if spec.kind == "money":
        return _number(raw, float)
    if spec.kind == "int":
        return _number(raw, int)
    if spec.kind == "json":
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc.msg} at character {exc.pos})") from None
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object, like {\"team\": \"search\"}")
        return value
    if spec.kind == "members":
        members = []
        for part in (p.strip() for p in raw.split(",")):
            if part:
                user_id, _, role = part.partition(":")
                members.append({"user_id": user_id.strip(), "role": role.strip() or "user"})
        return members
    return raw


def _number(raw: str, kind: type) -> Any:
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a {'whole ' if kind is int else ''}number") from None
