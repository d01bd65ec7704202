"""Spend reports from the hourly rollups: LiteLLM's `/global/spend/report`, `/spend/keys`, `/spend/users` and
`/spend/tags`, and our own `/spend/report` (any grouping, per hour or day, over a date range, with latency
percentiles)."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query

from ..errors import InvalidRequestError
from ..spend.holders import TEAM, USER
from ..spend.latency import percentile
from .admin_types import ADMIN_RESPONSES
from .deps import AdminReaderDep, RuntimeDep
from .keys import digest_of
from .store_access import budget_view, in_thread

router = APIRouter(tags=["spend"], responses=ADMIN_RESPONSES)
KEY_ID = re.compile(r"[0-9a-f]{32}")


def _moment(value: str | None, name: str, *, end: bool = False) -> datetime | None:
    """A date (`2026-01-31`: the whole day, so an end date is inclusive) or an aware ISO datetime."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day + timedelta(days=1) if end else day, time(), UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(f"{name} must be a date (YYYY-MM-DD) or an ISO 8601 datetime") from None
    if moment.tzinfo is None:
        raise InvalidRequestError(f"{name} needs a time zone (e.g. 2026-01-31T00:00:00Z) or a plain date")
    return moment


def _money(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "spend": float(row["spend"]), "cost_saved": float(row["cost_saved"])}


async def _key_id(runtime: Any, api_key: str) -> str:
    record = await in_thread(runtime.store.get_key, digest_of(api_key))
    if record is None:
        raise InvalidRequestError("api_key: no such key")
    return record.key_id


@router.get("/spend/report")
async def spend_report(_: AdminReaderDep, runtime: RuntimeDep, group_by: str = "model",
                       granularity: Literal["hour", "day", "all"] = "day", start_date: str | None = None,
                       end_date: str | None = None, key: str | None = None, team: str | None = None,
                       user: str | None = None, end_user: str | None = None, model: str | None = None,
                       deployment: str | None = None, provider: str | None = None, tag: str | None = None,
                       limit: int = Query(10_000, ge=1, le=100_000), latency: bool = False) -> dict[str, Any]:
    """`latency=true` adds p50/p99 from the rollups' histograms: 50 more sums a row, which made the largest
    reports 1.5–4 times slower, so only on request."""
    groups = [g.strip() for g in group_by.split(",") if g.strip()]
    filters = {name: value for name, value in (("key", key), ("team", team), ("user", user),
               ("end_user", end_user), ("model", model), ("deployment", deployment), ("provider", provider),
               ("tag", tag)) if value is not None}
    if key is not None and not KEY_ID.fullmatch(key):  # a plain key or its digest rather than the key_id
        filters["key"] = await _key_id(runtime, key)
    rows = await in_thread(runtime.store.spend_report, group_by=groups, granularity=granularity,
                           start=_moment(start_date, "start_date"), end=_moment(end_date, "end_date", end=True),
                           filters=filters, limit=limit + 1, latency=latency)
    truncated = len(rows) > limit
    rows = rows[:limit]
    for row in rows if latency else ():  # p50 and p99 from the histogram: within one bucket (26%) of the exact value
        histogram = row.pop("latency_histogram")
        row["latency_p50_ms"], row["latency_p99_ms"] = percentile(histogram, 0.5), percentile(histogram, 0.99)
    if "key" in groups:
        known = await in_thread(runtime.store.key_tokens, [r["key"] for r in rows if r["key"]])
        for row in rows:
            row["key_alias"] = known.get(row["key"], (None, None))[1]
    return {"group_by": groups, "granularity": granularity, "start_date": start_date, "end_date": end_date,
            "rows": [_money(r) for r in rows], "truncated": truncated}


@router.get("/global/spend/report")
async def global_spend_report(_: AdminReaderDep, runtime: RuntimeDep, start_date: str | None = None,
                              end_date: str | None = None,
                              group_by: Literal["team", "customer", "api_key"] = "team",
                              api_key: str | None = None, internal_user_id: str | None = None,
                              team_id: str | None = None, customer_id: str | None = None,
                              limit: int = Query(100_000, ge=1, le=100_000)) -> list[dict[str, Any]]:
    """LiteLLM's report. Ours on purpose: a report of more than `limit` rollup rows is refused (400) rather
    than cut short without a word, since this shape has no room to say it was."""
    filters = {name: value for name, value in (("user", internal_user_id), ("team", team_id),
                                                ("end_user", customer_id)) if value is not None}
    if api_key is not None:
        filters["key"] = await _key_id(runtime, api_key)
    start, end = _moment(start_date, "start_date"), _moment(end_date, "end_date", end=True)
    if group_by == "api_key":
        rows = await in_thread(runtime.store.spend_report, group_by=["key", "model"], granularity="all",
                               start=start, end=end, filters=filters, limit=limit + 1)
        return await _by_api_key(runtime, _whole(rows, limit))
    dimension = "team" if group_by == "team" else "end_user"
    grouping = ["team", "key", "model"] if dimension == "team" else ["end_user", "model"]  # end-users: by model
    rows = _whole(await in_thread(runtime.store.spend_report, group_by=grouping, granularity="day",
                                  start=start, end=end, filters=filters, limit=limit + 1), limit)
    tokens = await in_thread(runtime.store.key_tokens, list({r["key"] for r in rows if r.get("key")}))
    names: dict[str | None, str] = {}
    if dimension == "team":
        teams = await in_thread(runtime.store.get_holders, TEAM, {r["team"] for r in rows if r["team"]})
        names = {t.team_id: t.team_alias or t.team_id for t in teams}
    days: dict[str, dict[str | None, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        days[row["period"]][row[dimension]].append(row)
    plural, label = ("teams", "team_name") if dimension == "team" else ("customers", "customer")
    return [{"group_by_day": f"{day}T00:00:00+00:00", plural: [
        {label: names.get(group, group) if dimension == "team" else group,
         "total_spend": float(sum(r["spend"] for r in members)),
         "metadata": [{"model": r["model"], "spend": float(r["spend"]), "total_tokens": r["total_tokens"],
                       "api_key": _token(tokens, r.get("key"))} for r in members]}
        for group, members in groups.items()]} for day, groups in sorted(days.items())]


def _whole(rows: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    if len(rows) > limit:
        raise InvalidRequestError(f"the report has more than {limit:,} rows: narrow the dates or filters, or use "
                                  "GET /spend/report, which answers the first `limit` rows and says `truncated`")
    return rows


async def _by_api_key(runtime: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    tokens = await in_thread(runtime.store.key_tokens, list({r["key"] for r in rows if r["key"]}))
    keys: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        keys[row["key"]].append(row)
    return [{"api_key": _token(tokens, key),
             "total_cost": float(sum(r["spend"] for r in models)),
             "total_input_tokens": sum(r["input_tokens"] for r in models), "total_output_tokens": 0,
             "model_details": [{"model": r["model"], "total_cost": float(r["spend"]),
                                "total_input_tokens": r["input_tokens"], "total_output_tokens": 0}
                               for r in models]} for key, models in keys.items()]


def _token(tokens: dict[str, tuple[str, str | None]], key_id: str | None) -> str | None:
    """The key's current hash, as LiteLLM's reports name keys; None for no key or a deleted one."""
    found = tokens.get(key_id) if key_id else None
    return found[0] if found is not None else None


@router.get("/spend/keys")
async def spend_keys(_: AdminReaderDep, runtime: RuntimeDep) -> list[dict[str, Any]]:
    records, _total = await in_thread(runtime.store.list_keys, size=100_000)
    return sorted((budget_view(r) for r in records), key=lambda k: k["spend"], reverse=True)


@router.get("/spend/users")
async def spend_users(_: AdminReaderDep, runtime: RuntimeDep, user_id: str | None = None) -> list[dict[str, Any]]:
    records, _total = await in_thread(runtime.store.list_holders, USER,
                                      idents=None if user_id is None else [user_id], size=100_000)
    return sorted((budget_view(r) for r in records), key=lambda u: u["spend"], reverse=True)


@router.get("/spend/tags")
async def spend_tags(_: AdminReaderDep, runtime: RuntimeDep, start_date: str | None = None,
                     end_date: str | None = None) -> list[dict[str, Any]]:
    rows = await in_thread(runtime.store.spend_report, group_by=["tag"], granularity="all",
                           start=_moment(start_date, "start_date"), end=_moment(end_date, "end_date", end=True))
    return [{"individual_request_tag": r["tag"], "log_count": r["requests"], "total_spend": float(r["spend"])}
            for r in rows]


