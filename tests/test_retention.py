"""Spend log retention: old rows deleted in small batches in the background; rollups (reports) and running
totals keep them; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx

from proxy.spend.durations import parse_duration
from proxy.spend.retention import Retention
from proxy.spend.store import Store
from tests.serving import MASTER_KEY, config_for, running_proxy, wait_until

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_a_sweep_deletes_old_rows_in_batches_and_keeps_rollups_and_totals(store: Store, spend_event) -> None:
    old = [spend_event(f"old-{i}", cost="1", started_at=NOW - timedelta(days=40, minutes=i), key_id="k")
           for i in range(5)]
    new = [spend_event(f"new-{i}", cost="1", started_at=NOW - timedelta(days=1), key_id="k") for i in range(2)]
    store.write_batch(old + new)
    retention = Retention(store, parse_duration("30d"), 3600, batch=2)
    assert asyncio.run(retention.sweep(NOW)) == 5
    logs, total = store.spend_logs()
    assert total == 2 and {r.request_id for r in logs} == {"new-0", "new-1"}
    [report] = store.spend_report(group_by=["key"], granularity="all")
    assert report["requests"] == 7 and report["spend"] == Decimal(7)  # reports keep the deleted rows
    assert store.get_proxy_spend().spend == Decimal(7)
    assert asyncio.run(retention.sweep(NOW)) == 0


def test_month_periods_count_calendar_months() -> None:
    assert parse_duration("1mo").before(datetime(2026, 3, 31, tzinfo=UTC)) == datetime(2026, 2, 28, tzinfo=UTC)
    assert parse_duration("2h").seconds() == 7200


def test_the_server_sweeps_at_start_with_maximum_spend_logs_retention_period(fresh_db_url, spend_event) -> None:
    store = Store.connect(fresh_db_url)
    try:
        store.write_batch([spend_event("ancient", started_at=datetime.now(UTC) - timedelta(days=90)),
                           spend_event("recent", started_at=datetime.now(UTC) - timedelta(hours=1))])
    finally:
        store.close()
    config = config_for(None, fresh_db_url, general_settings={"maximum_spend_logs_retention_period": "30d",
                                                              "maximum_spend_logs_retention_interval": "1h"})
    with running_proxy(config) as server, httpx.Client(base_url=server.url, timeout=30,
                                                       headers={"authorization": f"Bearer {MASTER_KEY}"}) as api:
        ids = wait_until(lambda: (rows := {r["request_id"] for r in api.get("/spend/logs").json()}) == {"recent"}
                         and rows)
        assert ids == {"recent"}
