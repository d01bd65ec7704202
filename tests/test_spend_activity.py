"""Spend rows summed over time for the admin UI: buckets, latencies, per-deployment activity, log filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import update

from proxy.spend.tables import spend_logs

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_activity_sums_requests_errors_spend_and_savings_per_bucket_and_model(store, spend_event) -> None:
    store.write_batch([
        spend_event("a", started_at=T0 + timedelta(seconds=5), model_alias="m1", cost="0.5", latency_ms=10.0),
        spend_event("b", started_at=T0 + timedelta(seconds=50), model_alias="m1", cost="0.25", status=502,
                    latency_ms=30.0, deployment="d2"),
        spend_event("c", started_at=T0 + timedelta(seconds=70), model_alias="m2", cost="1", latency_ms=20.0),
        spend_event("d", started_at=T0 + timedelta(hours=2), model_alias="m1", cost="9"),  # outside the window
    ])
    with store.engine.begin() as connection:  # the team a key belongs to, as the spend writer records it
        connection.execute(update(spend_logs).where(spend_logs.c.request_id == "b").values(team_id="t1"))
    buckets = store.activity(T0, T0 + timedelta(hours=1), 60)
    seen = {(b.start, b.model_alias): (b.requests, b.errors, b.spend) for b in buckets}
    assert seen == {(T0, "m1"): (2, 1, Decimal("0.75")), (T0 + timedelta(minutes=1), "m2"): (1, 0, Decimal("1"))}
    assert sorted(ms for _, ms in store.latencies(T0, T0 + timedelta(hours=1))) == [10.0, 20.0, 30.0]
    assert [ms for _, ms in store.latencies(T0, T0 + timedelta(hours=1), limit=1)] == [20.0]  # the newest
    recent = store.deployment_activity(T0)
    assert recent["d2"] == (1, 1, 30.0) and recent["cohere-main"][0] == 3
    assert store.spend_log("b").status == 502 and store.spend_log("nope") is None
    failed, total = store.spend_logs(failed=True)
    assert total == 1 and failed[0].request_id == "b"
    assert [r.request_id for r in store.spend_logs(team_id="t1")[0]] == ["b"]
    assert store.spend_logs(failed=False)[1] == 3
