"""The shipped migrations build exactly `proxy.spend.tables`, and engines are configured per backend."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, inspect

import proxy.spend
from proxy.spend import tables
from proxy.spend.db import DEFAULT_URL, database_url, downgrade, make_engine, migrate
from proxy.spend.store import Store

TABLES = {"verification_tokens", "end_users", "spend_logs", "proxy_spend", "teams", "internal_users",
          "team_memberships", "tags", "spend_rollups", "spend_model_rollups", "spend_tag_rollups",
          "audit_logs", "proxy_models", "config_revisions", "key_changes", "key_digests"}


def schema_diff(engine: Engine, metadata: MetaData) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return compare_metadata(context, metadata)


@pytest.fixture
def fresh_engine(fresh_db_url: str):
    engine = make_engine(fresh_db_url)
    yield engine
    engine.dispose()


def test_migrations_produce_exactly_the_schema_of_tables_py(fresh_engine: Engine) -> None:
    migrate(fresh_engine)
    assert schema_diff(fresh_engine, tables.metadata) == []
    assert set(inspect(fresh_engine).get_table_names()) == TABLES | {"alembic_version"}


def test_schema_comparison_would_notice_a_drifted_table(fresh_engine: Engine) -> None:
    migrate(fresh_engine)
    drifted = MetaData(naming_convention=tables.NAMING)
    for table in tables.metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["spend_logs"].append_column(Column("region", Integer))
    assert [diff[0] for diff in schema_diff(fresh_engine, drifted)] == ["add_column"]


def test_migrate_is_repeatable_and_reversible(fresh_engine: Engine) -> None:
    migrate(fresh_engine)
    migrate(fresh_engine)
    downgrade(fresh_engine)
    assert set(inspect(fresh_engine).get_table_names()) <= {"alembic_version"}
    migrate(fresh_engine)
    assert schema_diff(fresh_engine, tables.metadata) == []


def test_migrations_need_no_alembic_ini() -> None:
    package = Path(tables.__file__).parent
    assert (package / "migrations" / "env.py").is_file()
    assert list((package / "migrations" / "versions").glob("0001_*.py"))
    assert not list(package.rglob("alembic.ini"))


def test_plain_postgresql_urls_use_psycopg_3() -> None:
    assert database_url("postgresql://u@h:5432/db").drivername == "postgresql+psycopg"
    assert database_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert database_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"


def test_default_database_is_a_sqlite_file_in_the_working_directory() -> None:
    assert DEFAULT_URL == "sqlite:///./rerank_proxy.db"
    assert database_url(None).render_as_string() == DEFAULT_URL


def test_sqlite_files_get_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}", busy_timeout_ms=1234)
    try:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA busy_timeout").scalar() == 1234
            assert pragma("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_the_spend_package_exports_are_pinned_and_lazy() -> None:
    assert proxy.spend.__all__ == [
        "AlreadyExistsError",
        "CustomerRecord",
        "Duration",
        "KeyRecord",
        "ProxySpendRecord",
        "SpendEvent",
        "SpendLogRecord",
        "SpendWriter",
        "Store",
        "make_engine",
        "migrate",
        "parse_duration",
    ]
    for name in proxy.spend.__all__:
        assert getattr(proxy.spend, name).__name__ == name
    probe = "import sys, proxy.spend.events; print('sqlalchemy' in sys.modules or 'alembic' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )


def test_workers_migrating_at_once_do_not_collide(fresh_db_url: str) -> None:
    engines = [make_engine(fresh_db_url) for _ in range(3)]
    try:
        with ThreadPoolExecutor(len(engines)) as pool:
            list(pool.map(migrate, engines))
        assert schema_diff(engines[0], tables.metadata) == []
    finally:
        for engine in engines:
            engine.dispose()


def test_ping_is_false_when_the_database_cannot_be_reached(tmp_path: Path) -> None:
    for url in ("postgresql://nobody@127.0.0.1:1/none", f"sqlite:///{tmp_path}/missing-dir/x.db"):
        store = Store(make_engine(url, connect_timeout_s=1))
        try:
            assert store.ping() is False
        finally:
            store.close()


def test_upgrading_a_0002_database_keeps_its_keys_and_spend_and_gives_each_key_a_stable_id(
        fresh_engine: Engine) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    migrate(fresh_engine, "0002")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with fresh_engine.begin() as connection:
        for token in ("a" * 64, "b" * 64):
            connection.execute(tables.verification_tokens.insert().values(
                token=token, models=[], metadata={}, spend=Decimal("1.5"), created_at=now, updated_at=now))
        connection.execute(tables.spend_logs.insert().values(
            request_id="r1", started_at=now, key_hash="a" * 64, model_alias="m", cost=Decimal("1.5"),
            latency_ms=1.0, status=200))
    migrate(fresh_engine)
    store = Store(fresh_engine)
    keys = [store.get_key(t) for t in ("a" * 64, "b" * 64)]
    assert all(k is not None and k.spend == Decimal("1.5") for k in keys)
    ids = {k.key_id for k in keys if k is not None}
    assert len(ids) == 2
    logs, total = store.spend_logs()
    assert total == 1 and logs[0].cost == Decimal("1.5") and logs[0].key_hash == "a" * 64
    # the rollups were rebuilt from the stored rows: reports cover spend from before the upgrade
    key_id = store.get_key("a" * 64).key_id
    [row] = store.spend_report(group_by=["key", "model"], granularity="day")
    assert (row["key"], row["model"], row["period"], row["requests"], row["spend"]) == (
        key_id, "m", "2026-01-01", 1, Decimal("1.5"))
    assert schema_diff(fresh_engine, tables.metadata) == []
