"""The spend writer's cost per row in isolation: `Store.write_batch` in a loop on a fresh database, batches
shaped as the writer makes them (`--batch` rows of a busy second: keys, teams, users, end-users, models,
tags and latencies spread as in bench/reports.py). The events are built before the clock starts.

Reported: µs per row, wall clock and this process's CPU (the median of `--repeat` runs, each on a new
database). On SQLite the CPU figure is the cost (the database runs in the process) and is steadier than the
wall clock on a shared machine; on PostgreSQL the server's work is only in the wall clock. For an A/B, run it against
two checkouts (`--code DIR` puts that tree's `proxy` first on the path) and interleave the runs.

    python bench/write_batch.py --rows 30000 --repeat 5
    python bench/write_batch.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
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
from typing import Any

MODELS = [("rerank-english", "cohere-main", "cohere", Decimal("0.002")), ("bge", "tei-1", "infinity", Decimal(0)),
          ("voyage", "voyage-1", "voyage", Decimal("0.00005")), ("jina", "jina-1", "jina_ai", Decimal("0.00002"))]


def events(rows: int, keys: list[tuple[str, str, str, str]], end_users: int, per_second: int) -> list[Any]:
    from proxy.spend.events import SpendEvent

    rng = random.Random(11)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    made = []
    for i in range(rows):
        token, key_id, team, user = keys[int(rng.paretovariate(1.2)) % len(keys)]
        alias, deployment, provider, price = MODELS[rng.randrange(len(MODELS))]
        failed = rng.random() < 0.02
        made.append(SpendEvent(
            request_id=f"req-{i}", started_at=start + timedelta(seconds=i / per_second), model_alias=alias,
            status=500 if failed else 200, latency_ms=rng.lognormvariate(4.0, 0.8), key_hash=token, key_alias=None,
            user_id=user, end_user=f"eu-{int(rng.paretovariate(1.1)) % end_users}", deployment=deployment,
            provider=provider, search_units=0.0 if failed else 1.0, input_tokens=None if failed else 400,
            total_tokens=None if failed else 400, cost=Decimal(0) if failed else price, key_id=key_id,
            team_id=team, tags=rng.choice((None, None, ["batch"], ["search", "prod"], ["chat"]))))
    return made


def fresh_url(base: str | None, run: int) -> str:
    if base is None:
        return f"sqlite:///{tempfile.mkdtemp(prefix='write-batch-')}/spend.db"
    from sqlalchemy import create_engine, make_url, text

    name = f"bench_write_batch_{run}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return make_url(base).set(database=name).render_as_string(hide_password=False)


def run_once(args: argparse.Namespace, run: int) -> tuple[float, float]:
    from proxy.spend.holders import TEAM, USER
    from proxy.spend.store import Store

    store = Store.connect(fresh_url(args.database_url, run))
    try:
        for t in range(20):
            store.create_holder(TEAM, f"team-{t}")
        for u in range(50):
            store.create_holder(USER, f"user-{u}")
        keys = []
        for k in range(200):
            record = store.create_key(f"{k:064x}", key_alias=f"key-{k}", team_id=f"team-{k % 20}",
                                      user_id=f"user-{k % 50}")
            keys.append((record.token, record.key_id, record.team_id or "", record.user_id or ""))
        made = events(args.rows, keys, args.end_users, args.per_second)
        batches = [made[i:i + args.batch] for i in range(0, len(made), args.batch)]
        began, cpu = time.perf_counter(), time.process_time()
        for batch in batches:
            store.write_batch(batch)
        return ((time.perf_counter() - began) / args.rows * 1e6, (time.process_time() - cpu) / args.rows * 1e6)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server to create databases on; "
                                                             "default: a new SQLite file per run")
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=60)
    parser.add_argument("--per-second", type=int, default=1000, help="requests per second the rows span")
    parser.add_argument("--end-users", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(args.code))
    runs = [run_once(args, run) for run in range(args.repeat)]
    import proxy

    wall, cpu = [r[0] for r in runs], [r[1] for r in runs]
    print(f"{Path(proxy.__file__).parent.parent}: {statistics.median(wall):.1f} µs/row wall, "
          f"{statistics.median(cpu):.1f} CPU, median of {args.repeat} (wall {', '.join(f'{r:.1f}' for r in wall)}); "
          f"batches of {args.batch}")
    if args.json:
        args.json.write_text(json.dumps({"code": str(args.code), "wall_us_per_row": wall, "cpu_us_per_row": cpu}))


if __name__ == "__main__":
    main()
