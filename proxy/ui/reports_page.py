"""The reports page: spend over a date range, grouped and filtered, as a table, bar charts and a CSV download.

It calls `GET /spend/report`'s route function and reads that function's signature for what it offers: every
optional filter parameter is a dimension to group and filter by, and the `granularity` Literal lists the
periods. A dimension or period the API learns appears here without a change; a combination the rollups
cannot answer comes back as the API's own error, shown on the page.
"""

from __future__ import annotations

import csv
import inspect
import io
import re
import typing
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..api import reports
from ..api.store_access import in_thread
from ..errors import ProxyError
from .charts import bar_chart, stacked_bar_chart
from .web import SECURITY_HEADERS, UI_CALLER, SessionDep, message_of, page, runtime_of

router = APIRouter(prefix="/ui", include_in_schema=False)

_PARAMETERS = inspect.signature(reports.spend_report).parameters
_HINTS = typing.get_type_hints(reports.spend_report)
RANGE = ("start_date", "end_date")
DIMENSIONS = [name for name, p in _PARAMETERS.items() if p.default is None and name not in RANGE]
"""The report's dimensions: its optional filter parameters (key, team, user, end_user, model, ...)."""
GRANULARITIES = [str(g) for g in typing.get_args(_HINTS["granularity"])] or ["day", "all"]
MEASURES = ("requests", "errors", "spend", "cost_saved", "search_units", "input_tokens", "total_tokens")
"""Shown first, in this order; any other measure a report row carries (latency percentiles, ...) follows."""
MONEY = ("spend", "cost_saved")
PAGE_ROWS = 2_000
"""Rows a page shows (the CSV carries up to `CSV_ROWS`); a longer report says it was cut short."""
CSV_ROWS = 100_000
CHARTED = 20
"""Groups a chart names one by one; the rest are summed as "other"."""
KEY_ID = re.compile(r"[0-9a-f]{32}")


def _choices(request: Request) -> dict[str, Any]:
    """The report the query asks for; the first visit gets spend by model over the last 30 days."""
    q = request.query_params
    asked = "granularity" in q
    today = datetime.now(UTC).date()
    group_by = [g for g in q.getlist("group_by") if g in DIMENSIONS] if asked else ["model"]
    granularity = q.get("granularity") if q.get("granularity") in GRANULARITIES else "all"
    return {"group_by": group_by, "granularity": granularity,
            "start_date": q.get("start_date") or (today - timedelta(days=29)).isoformat(),
            "end_date": q.get("end_date") or today.isoformat(),
            "filters": {d: q.get(d, "").strip() for d in DIMENSIONS}}


async def _report(request: Request, choices: dict[str, Any], limit: int) -> dict[str, Any]:
    runtime = runtime_of(request)
    filters = {name: value or None for name, value in choices["filters"].items()}
    alias = filters.get("key")
    if alias and not KEY_ID.fullmatch(alias) and not alias.startswith("sk-") and len(alias) != 64:
        record = await in_thread(runtime.store.get_key_by_alias, alias)  # the page filters keys by alias too
        filters["key"] = record.key_id if record is not None else alias
    arguments = {"group_by": ",".join(choices["group_by"]), "granularity": choices["granularity"],
                 "start_date": choices["start_date"] or None, "end_date": choices["end_date"] or None,
                 "limit": limit, "latency": True, **filters}
    return await reports.spend_report(UI_CALLER, runtime, **arguments)


@router.get("/reports")
async def reports_page(request: Request, session: SessionDep) -> HTMLResponse:
    choices = _choices(request)
    error: str | None = None
    answer: dict[str, Any] = {"rows": [], "truncated": False}
    try:
        answer = await _report(request, choices, PAGE_ROWS)
    except (ProxyError, ValueError) as exc:
        error = message_of(exc)
    rows = answer["rows"]
    charts = _charts(rows, choices) if rows else []
    totals = {m: sum(r.get(m) or 0 for r in rows) for m in ("spend", "requests")}
    return page(request, "reports.html", session, choices=choices, dimensions=DIMENSIONS,
                granularities=GRANULARITIES, rows=rows, labels=[_label(r, choices) for r in rows],
                periods=[_period(r.get("period")) for r in rows], charts=charts, totals=totals,
                truncated=answer["truncated"], report_error=error, measures=_measures(rows, choices),
                money=MONEY, csv_query=request.url.query, page_rows=PAGE_ROWS)


@router.get("/reports.csv")
async def reports_csv(request: Request, session: SessionDep) -> Response:
    choices = _choices(request)
    try:
        answer = await _report(request, choices, CSV_ROWS)
    except (ProxyError, ValueError) as exc:
        return Response(message_of(exc) + "\n", status_code=400, media_type="text/plain",
                        headers=SECURITY_HEADERS)
    out = io.StringIO()
    writer = csv.writer(out)
    columns = _columns(answer["rows"], choices)
    writer.writerow(columns)
    for row in answer["rows"]:
        writer.writerow([_cell(row.get(c)) for c in columns])
    if answer["truncated"]:
        writer.writerow([f"# cut short at {CSV_ROWS:,} rows: narrow the dates or filters"])
    name = f"spend-{choices['start_date']}-{choices['end_date']}.csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={**SECURITY_HEADERS, "content-disposition": f'attachment; filename="{name}"'})


def _columns(rows: list[dict[str, Any]], choices: dict[str, Any]) -> list[str]:
    period = ["period"] if choices["granularity"] != "all" else []
    alias = ["key_alias"] if "key" in choices["group_by"] else []
    return [*period, *choices["group_by"], *alias, *_measures(rows, choices)]


def _measures(rows: list[dict[str, Any]], choices: dict[str, Any]) -> list[str]:
    named = {"period", "key_alias", *choices["group_by"], *MEASURES}
    return [*MEASURES, *(name for name in (rows[0] if rows else {}) if name not in named)]


def _period(value: Any) -> str:
    """A day as it is; an hour (an ISO datetime) as `YYYY-MM-DD HH:MM`."""
    return str(value)[:16].replace("T", " ") if value is not None else ""


def _cell(value: Any) -> Any:
    """A spreadsheet must not run a cell as a formula: text starting =, +, - or @ gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def _label(row: dict[str, Any], choices: dict[str, Any]) -> str:
    parts = []
    for name in choices["group_by"]:
        value = row.get(name)
        if name == "key" and value:
            value = row.get("key_alias") or f"key {value[:8]}…"
        parts.append(str(value) if value not in (None, "") else "(none)")
    return " · ".join(parts) or "all"


def _charts(rows: list[dict[str, Any]], choices: dict[str, Any]) -> list[str]:
    by_group: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        for measure in ("spend", "requests"):
            by_group[_label(row, choices)][measure] += float(row.get(measure) or 0)
    ranked = sorted(by_group, key=lambda g: (-by_group[g]["spend"], -by_group[g]["requests"]))
    shown, rest = ranked[:CHARTED], ranked[CHARTED:]
    charts = []
    for measure, title, unit in (("spend", "Spend (USD)", "$"), ("requests", "Requests", "")):
        if choices["granularity"] == "all":
            values = [by_group[g][measure] for g in shown]
            labels = list(shown)
            if rest:
                labels.append(f"other ({len(rest)})")
                values.append(sum(by_group[g][measure] for g in rest))
            charts.append(bar_chart(f"{title} by {' · '.join(choices['group_by']) or 'total'}", labels, values,
                                    unit=unit))
        else:
            charts.append(_over_time(rows, choices, measure, title, unit, shown[:5]))
    return charts


def _over_time(rows: list[dict[str, Any]], choices: dict[str, Any], measure: str, title: str, unit: str,
               shown: list[str]) -> str:
    periods = sorted({_period(r["period"]) for r in rows})
    index = {p: i for i, p in enumerate(periods)}
    series: dict[str, list[float]] = {g: [0.0] * len(periods) for g in shown}
    other = [0.0] * len(periods)
    for row in rows:
        target = series.get(_label(row, choices), other)
        target[index[_period(row["period"])]] += float(row.get(measure) or 0)
    if any(other):
        series["other"] = other
    names = [p[5:] for p in periods]  # the year is in the date range above the chart
    return stacked_bar_chart(f"{title} per {choices['granularity']}", names, series, unit=unit)
