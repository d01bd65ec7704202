"""Spend reports on a large spend history: bulk-load spend rows through the real spend writer path
(`Store.write_batch`, which keeps the hourly rollups), then time each report query and the admin UI
overview's windows.

The load is realistic in shape: `--keys` keys in `--teams` teams and `--users` internal users, `--end-users`
end-users, four models on their deployments, a tag or two on a third of the requests, 2% errors, spread over
`--days` days. Reported: load rate, rollup row counts, and the median of `--repeat` runs of each report (the
store call a route makes, on a database the process has open), with the scan of the spend logs that the same
answer would otherwise need, for scale. Figures, not assertions: the machine and its load decide them.

    python bench/reports.py                                        # 1,000,000 rows, a new SQLite file
    python bench/reports.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_reports
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.spend.events import SpendEvent  # noqa: E402
from proxy.spend.holders import TEAM, USER  # noqa: E402
from proxy.spend.store import Store  # noqa: E402
from proxy.spend.tables import spend_logs, spend_rollups, spend_tag_rollups  # noqa: E402
from proxy.ui.overview import build_overview  # noqa: E402

MODELS = [("rerank-english", "cohere-main", "cohere", Decimal("0.002")), ("bge", "tei-1", "infinity", Decimal(0)),
          ("voyage", "voyage-1", "voyage", Decimal("0.00005")), ("jina", "jina-1", "jina_ai", Decimal("0.00002"))]


def load(store: Store, rows: int, args: argparse.Namespace) -> float:
    rng = random.Random(7)
    for t in range(args.teams):
        store.create_holder(TEAM, f"team-{t}")
    for u in range(args.users):
        store.create_holder(USER, f"user-{u}")
    keys = []
    for k in range(args.keys):
        record = store.create_key(f"{k:064x}", key_alias=f"key-{k}", team_id=f"team-{k % args.teams}",
                                  user_id=f"user-{k % args.users}")
        keys.append((record.token, record.key_id, record.team_id, record.user_id))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    span = args.days * 86400
    began = time.perf_counter()
    for first in range(0, rows, args.batch):
        events = []
        for i in range(first, min(first + args.batch, rows)):
            token, key_id, team, user = keys[int(rng.paretovariate(1.2)) % len(keys)]
            alias, deployment, provider, price = MODELS[rng.randrange(len(MODELS))]
            failed = rng.random() < 0.02
            tags = rng.choice((None, None, ["batch"], ["search", "prod"], ["chat"]))
            events.append(SpendEvent(
                request_id=f"req-{i}", started_at=start + timedelta(seconds=span * i / rows), model_alias=alias,
                status=500 if failed else 200, latency_ms=rng.lognormvariate(4.0, 0.8), key_hash=token,
                key_alias=None, user_id=user,
                end_user=f"eu-{int(rng.paretovariate(1.1)) % args.end_users}", deployment=deployment,
                provider=provider, search_units=0.0 if failed else 1.0, input_tokens=None if failed else 400,
                total_tokens=None if failed else 400, cost=Decimal(0) if failed else price, key_id=key_id,
                team_id=team, tags=tags))
        store.write_batch(events)
    return time.perf_counter() - began


def timed(fn, repeat: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - began) * 1000)
        size = len(result)
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file in a temp directory")
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--teams", type=int, default=20)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--end-users", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='reports-bench-')}/spend.db"
    store = Store.connect(url)
    try:
        seconds = load(store, args.rows, args)
        with store.engine.connect() as connection:
            counts = {t.name: connection.execute(select(func.count()).select_from(t)).scalar_one()
                      for t in (spend_logs, spend_rollups, spend_tag_rollups)}
        week = (datetime(2026, 1, 8, tzinfo=UTC), datetime(2026, 1, 15, tzinfo=UTC))
        whole = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=args.days))
        c = spend_logs.c
        reports = {
            "by team per day, whole range (/global/spend/report's first step)": lambda: store.spend_report(
                group_by=["team", "key", "model"], granularity="day", start=whole[0], end=whole[1]),
            "by model per day, whole range": lambda: store.spend_report(
                group_by=["model"], start=whole[0], end=whole[1]),
            "by key, one week, all-in-one": lambda: store.spend_report(
                group_by=["key"], granularity="all", start=week[0], end=week[1]),
            "one team by model per day, one week": lambda: store.spend_report(
                group_by=["model"], start=week[0], end=week[1], filters={"team": "team-3"}),
            "by end-user, whole range, all-in-one (top 10,000)": lambda: store.spend_report(
                group_by=["end_user"], granularity="all", start=whole[0], end=whole[1]),
            "by tag per day (/spend/tags by day)": lambda: store.spend_report(group_by=["tag"]),
            "by end-user x tag x model per hour, one day, with latency": lambda: store.spend_report(
                group_by=["end_user", "tag", "model"], granularity="hour", start=week[0],
                end=week[0] + timedelta(days=1), latency=True),
            "by team x end-user per day, one week, with latency (/spend/report)": lambda: store.spend_report(
                group_by=["team", "end_user"], start=week[0], end=week[1], latency=True),
            "by model per day, whole range, with latency (/spend/report)": lambda: store.spend_report(
                group_by=["model"], start=whole[0], end=whole[1], latency=True),
            "UI overview, day window (per hour)": lambda: build_overview(store, "day", now=whole[1]).charts,
            "UI overview, 30-day window (per day)": lambda: build_overview(store, "month", now=whole[1]).charts,
        }
        results = {name: timed(fn, args.repeat) for name, fn in reports.items()}

        def scan() -> list:
            with store.engine.connect() as connection:
                return connection.execute(select(c.model_alias, func.sum(c.cost), func.count())
                                          .where(c.started_at >= whole[0], c.started_at < whole[1])
                                          .group_by(c.model_alias)).all()
        scanned = timed(scan, min(args.repeat, 3))
    finally:
        store.close()
    print(f"database: {store.engine.dialect.name}; {args.rows:,} spend rows loaded through write_batch in "
          f"{seconds:.1f} s ({args.rows / seconds:,.0f} rows/s, rollups included)")
    print("rows: " + ", ".join(f"{name} {count:,}" for name, count in counts.items()))
    for name, (ms, size) in results.items():
        print(f"  {ms:8.1f} ms  {size:6,} rows  {name}")
    print(f"  {scanned[0]:8.1f} ms  {scanned[1]:6,} rows  (for scale: by model over the whole range, scanning "
          "spend_logs)")
    if args.json:
        args.json.write_text(json.dumps({"database": store.engine.dialect.name, "rows": args.rows,
                                         "load_seconds": seconds, "counts": counts,
                                         "reports_ms": {n: r[0] for n, r in results.items()},
                                         "scan_ms": scanned[0]}, indent=2))


if __name__ == "__main__":
    main()
