"""`rerank-proxy migrate` and `general_settings.disable_schema_update`: one step (a Kubernetes Job) migrates,
replicas only check that the schema is there and refuse clearly when it is behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from alembic.script import ScriptDirectory

from proxy.spend.db import MIGRATIONS, SchemaBehindError, check_schema, make_engine, migrate
from tests.serving import cli_process

HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}


def write_config(directory: Path, database: str, **general: object) -> Path:
    config = directory / "config.yaml"
    config.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "local-bm25", "litellm_params": {"model": "local/bm25"}}],
        "general_settings": {"database_url": database, **general},
    }))
    return config


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, env=CLEAN_ENV,
                          timeout=120)


def test_migrate_brings_an_empty_database_to_this_versions_head(fresh_db_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, fresh_db_url)
    result = run_cli("migrate", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert f"schema revision {HEAD}" in result.stdout
    engine = make_engine(fresh_db_url)
    try:
        assert check_schema(engine) == HEAD
    finally:
        engine.dispose()
    assert run_cli("migrate", "--config", str(config)).returncode == 0  # again: nothing to do, still fine


def test_migrate_reports_an_unreachable_database_without_a_traceback(tmp_path: Path) -> None:
    config = write_config(tmp_path, "postgresql://nobody@127.0.0.1:1/none")
    result = run_cli("migrate", "--config", str(config))
    assert result.returncode == 1
    assert "rerank-proxy migrate: OperationalError" in result.stderr and "Traceback" not in result.stderr


def test_a_replica_that_may_not_migrate_refuses_an_empty_database_and_names_the_fix(
        fresh_db_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, fresh_db_url, disable_schema_update=True)
    result = run_cli("--config", str(config), "--port", "0")
    assert result.returncode == 2
    assert "none (an empty database)" in result.stderr and "rerank-proxy migrate" in result.stderr
    assert HEAD in result.stderr


def test_a_replica_that_may_not_migrate_serves_once_the_job_has_migrated(fresh_db_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, fresh_db_url, disable_schema_update=True)
    assert run_cli("migrate", "--config", str(config)).returncode == 0
    with cli_process(["--config", str(config)], env={"DATABASE_URL": ""}) as (_proc, url):
        response = httpx.post(url + "/v1/rerank", json={"model": "local-bm25", "query": "cat",
                                                        "documents": ["a cat", "a dog"]}, timeout=30)
        assert response.status_code == 200


def test_check_schema_tells_behind_from_ahead(fresh_db_url: str) -> None:
    engine = make_engine(fresh_db_url)
    try:
        with pytest.raises(SchemaBehindError, match="none"):
            check_schema(engine)
        migrate(engine, "0001")
        with pytest.raises(SchemaBehindError, match=f"is 0001.*needs {HEAD}"):
            check_schema(engine)
        migrate(engine)
        with engine.begin() as connection:  # a newer version migrated it: old replicas keep serving
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_from_the_future'")
        assert check_schema(engine) == "9999_from_the_future"
    finally:
        engine.dispose()
