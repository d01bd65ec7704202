"""The hourly spend rollups against the spend rows they sum: reports by any grouping per hour, day or range
equal a direct aggregation of the rows; latency percentiles from the histograms fall in the exact value's
bucket; the migration rebuilds them from stored rows; the admin UI's day and 30-day charts read them. SQLite
and PostgreSQL."""

from __future__ import annotations

import math
import random
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import inspect, select, text

from proxy.spend import aggregates, latency, tables
from proxy.spend.db import downgrade, make_engine, migrate
from proxy.spend.store import Store
from proxy.ui.overview import build_overview

T0 = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
FIELDS = {"key": "key_id", "team": "team_id", "user": "user_id", "end_user": "end_user", "model": "model_alias",
          "deployment": "deployment", "provider": "provider"}


def random_events(spend_event: Any, count: int, seed: int = 5) -> list[Any]:
    rng = random.Random(seed)
    models = [("m1", "d1", "cohere"), ("m1", "d2", "voyage"), ("m2", "d3", "jina_ai")]
    events = []
    for i in range(count):
        model, deployment, provider = rng.choice(models)
        events.append(spend_event(
            f"r{i}", cost=str(rng.choice((0, 0.001, 0.002, 0.0375))),
            started_at=T0 + timedelta(minutes=rng.randrange(3000)),
            key_id=rng.choice(("k1", "k2", None)), team_id=rng.choice(("t1", "t2", None)),
            user_id=rng.choice(("u1", None)), end_user=rng.choice(("e1", "e2", "e3", None)), model_alias=model,
            deployment=deployment, provider=provider, tags=rng.choice((None, ["a"], ["a", "b"], ["b"])),
            status=rng.choice((200, 200, 200, 429, 502)), latency_ms=rng.lognormvariate(4, 1.2),
            input_tokens=rng.choice((None, 10, 400)), total_tokens=rng.choice((None, 12)),
            cost_saved=Decimal(rng.choice(("0", "0.002")))))
    return events


def period_of(at: datetime, granularity: str) -> str | None:
    if granularity == "all":
        return None
    if granularity == "day":
        return at.date().isoformat()
    return at.replace(minute=0, second=0, microsecond=0).isoformat()


def direct(store: Store, group_by: list[str], granularity: str, filters: dict[str, str]) -> dict[tuple, dict]:
    """The report computed from the spend rows themselves."""
    with store.engine.connect() as connection:
        rows = connection.execute(select(tables.spend_logs)).all()
    groups: dict[tuple, dict[str, Any]] = defaultdict(lambda: defaultdict(Decimal, latencies=[]))
    for row in rows:
        for tag in (row.tags or []) if "tag" in {*group_by, *filters} else [None]:
            values = {name: getattr(row, column) for name, column in FIELDS.items()} | {"tag": tag}
            if any(values[name] != value for name, value in filters.items()):
                continue
            g = groups[(period_of(row.started_at, granularity), *(values[name] for name in group_by))]
            g["requests"] += 1
            g["errors"] += row.status >= 400
            g["spend"] += row.cost
            g["input_tokens"] += row.input_tokens or 0
            g["total_tokens"] += row.total_tokens or 0
            g["cost_saved"] += row.cost_saved
            g["latencies"].append(row.latency_ms)
    return groups


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def assert_within_its_bucket(estimate: float | None, exact_value: float, rounding: float = 0.0) -> None:
    low, high = latency.bounds(latency.bucket_of(exact_value))
    assert estimate is not None and low - rounding <= estimate <= high + rounding, (estimate, exact_value, low, high)


GROUPINGS = [
    (["end_user", "tag", "model"], "hour", {}),
    (["end_user", "tag", "model"], "day", {"team": "t1"}),
    (["key", "team", "user", "end_user", "model", "deployment", "provider"], "hour", {}),
    (["key", "end_user"], "day", {"provider": "voyage"}),
    (["tag"], "all", {"end_user": "e2", "key": "k1"}),
    (["deployment"], "all", {}),  # these two read spend_model_rollups
    (["model"], "hour", {"provider": "voyage"}),
    ([], "day", {}),
]


@pytest.mark.parametrize(("group_by", "granularity", "filters"), GROUPINGS)
def test_reports_equal_a_direct_aggregation_of_the_spend_rows(store, spend_event, group_by, granularity, filters):
    events = random_events(spend_event, 600)
    assert sum(store.write_batch(events[i:i + 70]) for i in range(0, 600, 70)) == 600
    assert store.write_batch(events[100:250]) == 0  # a retried batch adds nothing
    expected = direct(store, group_by, granularity, filters)
    rows = store.spend_report(group_by=group_by, granularity=granularity, filters=filters, latency=True,
                              limit=100_000)
    got = {(r.get("period"), *(r[name] for name in group_by)): r for r in rows}
    assert got.keys() == expected.keys() and len(rows) == len(got)
    for group, want in expected.items():
        row = got[group]
        for measure in ("requests", "errors", "input_tokens", "total_tokens"):
            assert row[measure] == want[measure], (group, measure)
        assert float(row["spend"]) == pytest.approx(float(want["spend"]), abs=1e-9)
        assert float(row["cost_saved"]) == pytest.approx(float(want["cost_saved"]), abs=1e-9)
        exact_counts = [0] * latency.BUCKETS  # every bucket, whether a row was written with one bucket or many
        for value in want["latencies"]:
            exact_counts[latency.bucket_of(value)] += 1
        assert row["latency_histogram"] == exact_counts and sum(exact_counts) == want["requests"]
        for q in (0.5, 0.99):
            assert_within_its_bucket(latency.percentile(row["latency_histogram"], q), exact(want["latencies"], q))


def test_a_day_report_sums_its_hours_and_a_range_covers_the_hours_it_touches(store, spend_event):
    store.write_batch(random_events(spend_event, 300, seed=9))
    hours = store.spend_report(group_by=["model"], granularity="hour", limit=100_000)
    days = store.spend_report(group_by=["model"], granularity="day")
    summed: dict[tuple[str, str], int] = defaultdict(int)
    for row in hours:
        summed[(row["period"][:10], row["model"])] += row["requests"]
    assert summed == {(r["period"], r["model"]): r["requests"] for r in days}
    start, end = T0 + timedelta(hours=3, minutes=30), T0 + timedelta(hours=5)
    ranged = store.spend_report(group_by=[], granularity="hour", start=start, end=end)
    assert [r["period"] for r in ranged] == [(T0 + timedelta(hours=h)).isoformat() for h in (3, 4)]
    with pytest.raises(ValueError, match="granularity"):
        store.spend_report(group_by=["model"], granularity="week")


def test_latency_buckets_are_log_spaced_and_percentiles_fall_in_the_exact_values_bucket():
    assert [latency.bucket_of(ms) for ms in (0.0, 0.99, 1.0, 1.25, 1.26, 2.0, 65535.9, 65536.0, 1e9)] == [
        0, 0, 1, 1, 2, 4, 48, 49, 49]
    assert latency.bucket_of(math.nan) == 0 and latency.bucket_of(-3.0) == 0 and latency.bucket_of(math.inf) == 49
    for bucket in range(1, latency.BUCKETS - 1):
        low, high = latency.bounds(bucket)
        assert latency.bucket_of(low * 1.0001) == bucket and latency.bucket_of(high * 0.9999) == bucket
        assert high / low == pytest.approx(2 ** (1 / 3))
    assert latency.percentile([0] * latency.BUCKETS, 0.5) is None
    rng = random.Random(3)
    for _ in range(50):
        values = [rng.lognormvariate(rng.uniform(0, 8), rng.uniform(0.1, 2)) for _ in range(rng.randrange(1, 400))]
        counts = [0] * latency.BUCKETS
        for ms in values:
            counts[latency.bucket_of(ms)] += 1
        for q in (0.0, 0.5, 0.9, 0.99, 1.0):
            assert_within_its_bucket(latency.percentile(counts, q), exact(values, q))


def test_the_postgresql_rollup_upserts_stay_small_enough_for_psycopg_to_parse_them_once():
    """psycopg caches its parse of a statement of at most 4,096 characters and 50 parameters; the upserts with
    an array per latency bucket were parsed again on every batch (~0.25 ms each, three a batch)."""
    for _, statement, _ in aggregates.PG_ROLLUPS:
        assert len(statement) <= 4096 and len(set(re.findall(r"%\((\w+)\)s", statement))) <= 50


def test_migration_0007_rebuilds_hourly_rollups_from_stored_rows_and_downgrades_to_daily(fresh_db_url: str):
    engine = make_engine(fresh_db_url)
    try:
        migrate(engine, "0006")
        now = datetime(2026, 1, 1, tzinfo=UTC)
        with engine.begin() as connection:
            connection.execute(tables.verification_tokens.insert().values(
                token="a" * 64, key_id="ka", models=[], metadata={}, created_at=now, updated_at=now))
            for i, (minutes, tags, ms) in enumerate([(5, ["x"], 3.0), (50, ["x", "y"], 40.0), (70, None, 900.0),
                                                     (24 * 60 + 1, ["y"], 0.5)]):
                connection.execute(tables.spend_logs.insert().values(
                    request_id=f"old{i}", started_at=now + timedelta(minutes=minutes),
                    key_hash="a" * 64 if i < 2 else None, key_id="ka" if i == 2 else None, end_user="eu",
                    model_alias="m", cost=Decimal("0.5"), latency_ms=ms, status=200 if i else 500, tags=tags))
        migrate(engine)
        store = Store(engine)
        hours = store.spend_report(group_by=["key", "end_user", "tag"], granularity="hour", latency=True)
        assert [(r["period"][:13], r["key"], r["end_user"], r["tag"], r["requests"], r["errors"]) for r in hours] == [
            ("2026-01-01T00", "ka", "eu", "x", 2, 1), ("2026-01-01T00", "ka", "eu", "y", 1, 0),
            ("2026-01-02T00", None, "eu", "y", 1, 0)]
        [first] = store.spend_report(group_by=["key"], granularity="hour", latency=True,
                                     end=now + timedelta(hours=1))
        assert first["requests"] == 2 and first["spend"] == Decimal(1)
        assert first["latency_histogram"][latency.bucket_of(3.0)] == 1
        assert first["latency_histogram"][latency.bucket_of(40.0)] == 1
        [day] = store.spend_report(group_by=["key"], granularity="day", filters={"key": "ka"})
        assert (day["period"], day["requests"]) == ("2026-01-01", 3)
        with engine.connect() as connection:
            indexes = {ix["name"] for ix in inspect(connection).get_indexes("spend_logs")}
        assert "ix_spend_logs_key_id" not in indexes  # added by 0007, replaced by key_digests in 0011
        downgrade(engine, "0006")
        with engine.connect() as connection:
            old = connection.execute(text("SELECT key_id, requests FROM spend_rollups ORDER BY bucket")).all()
            eu = connection.execute(text("SELECT end_user, requests FROM spend_end_user_rollups ORDER BY bucket")).all()
            tags = connection.execute(text("SELECT tag, requests FROM spend_tag_rollups ORDER BY bucket, tag")).all()
        assert [tuple(r) for r in old] == [("ka", 3), ("", 1)]
        assert [tuple(r) for r in eu] == [("eu", 3), ("eu", 1)]
        assert [tuple(r) for r in tags] == [("x", 2), ("y", 1), ("y", 1)]
        migrate(engine)  # and up again: rebuilt once more, from the same rows
        assert sum(r["requests"] for r in Store(engine).spend_report(group_by=["end_user"], granularity="all")) == 4
        [by_model] = Store(engine).spend_report(group_by=["model", "provider"], granularity="all", latency=True)
        assert (by_model["model"], by_model["requests"], sum(by_model["latency_histogram"])) == ("m", 4, 4)
    finally:
        engine.dispose()


def test_the_overviews_day_and_month_read_the_rollups_and_the_hour_reads_the_rows(store, spend_event):
    now = T0 + timedelta(hours=10)
    events = [spend_event(f"o{i}", started_at=now - timedelta(minutes=7 * i), model_alias=f"m{i % 2}",
                          latency_ms=5.0 * (i + 1), cost="0.01") for i in range(20)]
    store.write_batch(events)
    day = build_overview(store, "day", now=now)
    month = build_overview(store, "month", now=now)
    hour = build_overview(store, "hour", now=now)
    assert day.totals["Requests"] == month.totals["Requests"] == "20" and hour.totals["Requests"] == "9"
    assert day.totals["Spend"] == month.totals["Spend"] == "$0.2000"
    p50 = float(day.totals["p50 / p99 latency"].split(" ms")[0])
    assert_within_its_bucket(p50, exact([e.latency_ms for e in events], 0.5), rounding=0.5)  # shown as whole ms
    assert hour.totals["p50 / p99 latency"] == "25 ms / 45 ms"  # exact: the newest nine rows
    with store.engine.begin() as connection:  # log retention removed the rows: the day and month still have them
        connection.execute(tables.spend_logs.delete())
    assert build_overview(store, "day", now=now).totals == day.totals
    assert build_overview(store, "hour", now=now).totals["Requests"] == "0"
