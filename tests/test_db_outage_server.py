"""The whole server while its database hangs, is down at start, or its disk is full; kill -9 mid-outage.

PostgreSQL runs behind a TCP relay on loopback (tests/tcp_relay.py) that stops answering without refusing
anything; SQLite runs on a small loop-mounted file system that can be filled (root only, else skipped).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

from proxy.spend.db import database_url
from tests.conftest import POSTGRES_ENV, scratch_database
from tests.serving import MASTER_KEY, admin, background_load, cli_process, config_for, running_proxy, wait_until
from tests.tcp_relay import TcpRelay

BODY = {"model": "local-bm25", "query": "capital of the United States",
        "documents": ["Washington is the capital of the United States.", "Paris is in France."]}


def count_rows(db_url: str) -> int:
    engine = sa.create_engine(database_url(db_url))
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("select count(*) from spend_logs")).scalar_one()
    finally:
        engine.dispose()


@pytest.fixture
def relayed_postgres(tmp_path: Path) -> Iterator[tuple[TcpRelay, str, str]]:
    """(relay, URL through the relay, direct URL) of a new PostgreSQL database."""
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"needs {POSTGRES_ENV}")
    with scratch_database("postgres", tmp_path) as direct:
        parsed = make_url(direct)
        with TcpRelay(parsed.host or "127.0.0.1", parsed.port or 5432) as relay:
            relayed = parsed.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
            try:
                yield relay, relayed, direct
            finally:
                relay.thaw()


def test_a_nul_byte_end_user_is_refused_never_served_free(fresh_db_url):
    with running_proxy(config_for(None, fresh_db_url)) as server, admin(server.url) as client:
        for user, reason in (("acme\u0000corp", "end-user id"), ("lone \ud800 surrogate", "not valid JSON")):
            refused = client.post("/v2/rerank", content=json.dumps({**BODY, "user": user}),  # escaped as \uXXXX
                                  headers={"content-type": "application/json"})
            assert refused.status_code == 400 and reason in refused.json()["message"]
        assert client.post("/v2/rerank", json={**BODY, "user": "acme"}).status_code == 200
        wait_until(lambda: count_rows(fresh_db_url) == 1)


def test_a_hung_database_costs_known_keys_no_wait_and_unknown_keys_a_fast_503(relayed_postgres, tmp_path):
    relay, url, direct = relayed_postgres
    config = config_for(None, url, general_settings={"key_cache_ttl": 0.5, "database_read_timeout": 0.2,
                                                     "spend_spill_path": str(tmp_path / "spill")})
    with running_proxy(config) as server, admin(server.url) as client:
        key = client.post("/key/generate", json={"key_alias": "hung"}).json()["key"]
        headers = {"Authorization": f"Bearer {key}"}
        assert client.post("/v2/rerank", json=BODY, headers=headers).status_code == 200
        wait_until(lambda: count_rows(direct) == 1)
        relay.freeze()
        try:
            statuses = []
            until = time.monotonic() + 3  # six TTLs of the key with the database hung
            while time.monotonic() < until:
                statuses.append(client.post("/v2/rerank", json=BODY, headers=headers).status_code)
            assert set(statuses) == {200}
            unknown = client.post("/v2/rerank", json=BODY, headers={"Authorization": "Bearer sk-unknown"})
            assert unknown.status_code == 503 and unknown.headers["retry-after"] and unknown.json()["message"]
            ready = client.get("/health/readiness")
            assert ready.status_code == 200 and ready.json()["db"] == "unreachable"
        finally:
            relay.thaw()
        wait_until(lambda: count_rows(direct) == 1 + len(statuses), timeout=60)
        wait_until(lambda: client.get("/health/readiness").json()["db"] == "connected")


def test_a_replica_starts_with_the_database_down_and_serves_once_it_is_up(relayed_postgres, tmp_path):
    relay, url, direct = relayed_postgres
    relay.refuse()
    config = config_for(None, url, general_settings={"spend_spill_path": str(tmp_path / "spill")})
    with running_proxy(config) as server, admin(server.url) as client:
        ready = client.get("/health/readiness")
        assert ready.status_code == 200 and ready.json()["db"] == "connecting"
        assert client.post("/v2/rerank", json=BODY).status_code == 200  # the master key needs no database
        unknown = client.post("/v2/rerank", json=BODY, headers={"Authorization": "Bearer sk-anyone"})
        assert unknown.status_code == 503
        relay.thaw()
        wait_until(lambda: client.get("/health/readiness").json()["db"] == "connected", timeout=60)
        key = client.post("/key/generate", json={"key_alias": "late"}).json()["key"]
        assert client.post("/v2/rerank", json=BODY, headers={"Authorization": f"Bearer {key}"}).status_code == 200
        wait_until(lambda: count_rows(direct) == 2, timeout=60)  # the call made before the database was up too


def test_kill_9_during_an_outage_loses_no_journaled_row(relayed_postgres, tmp_path):
    relay, url, direct = relayed_postgres
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "local-bm25", "litellm_params": {"model": "local/bm25"}}],
        "general_settings": {"master_key": MASTER_KEY, "database_url": url, "spend_flush_interval": 0.05,
                             "spend_spill_path": str(tmp_path / "spill")},
    }))
    with cli_process(["--config", str(config)], cwd=tmp_path) as (proc, proxy_url), admin(proxy_url) as client:
        key = client.post("/key/generate", json={"key_alias": "crash"}).json()["key"]
        headers = {"Authorization": f"Bearer {key}"}
        for _ in range(5):
            assert client.post("/v2/rerank", json=BODY, headers=headers).status_code == 200
        wait_until(lambda: count_rows(direct) == 5)
        relay.freeze()
        for _ in range(20):
            assert client.post("/v2/rerank", json=BODY, headers=headers).status_code == 200
        spill = tmp_path / "spill"
        wait_until(lambda: spill.exists() and len(spill.read_text().splitlines()) >= 20, timeout=30)
        # journaled while the first write was still stalled, not after its 2 s write timeout failed it:
        # a kill -9 in the first seconds of a hang loses only what arrived in the last ~0.25 s
        wait_until(lambda: "spend write stalled" in proc.output)
        assert "spend write failed" not in proc.output
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    relay.thaw()
    with cli_process(["--config", str(config)], cwd=tmp_path):
        wait_until(lambda: count_rows(direct) == 25, timeout=60)
    assert count_rows(direct) == 25


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB ext4 file system mounted on a loop device (root only)."""
    if os.geteuid() != 0 or not shutil.which("mkfs.ext4"):
        pytest.skip("mounting a loop file system needs root and mkfs.ext4")
    image, mount = tmp_path / "volume.img", tmp_path / "volume"
    image.write_bytes(b"\0" * 4 * 1024 * 1024)
    mount.mkdir()
    subprocess.run(["mkfs.ext4", "-q", str(image)], check=True)
    if subprocess.run(["mount", "-o", "loop", str(image), str(mount)], capture_output=True).returncode:
        pytest.skip("this machine does not allow loop mounts")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(volume: Path) -> Path:
    """Fill `volume` up; the filler's path is returned (delete it to free the space)."""
    filler = volume / f"filler-{uuid.uuid4().hex}"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
                os.fsync(out.fileno())
        except OSError:
            pass
    return filler


@pytest.mark.parametrize("spill_elsewhere", [False, True], ids=["spill-on-the-full-disk", "spill-on-another-volume"])
def test_sigterm_with_the_disk_full_reports_every_lost_row_or_keeps_them_on_another_volume(
        small_volume, tmp_path, spill_elsewhere):
    db = small_volume / "spend.db"
    spill = (tmp_path / "spill") if spill_elsewhere else (small_volume / "spill")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "local-bm25", "litellm_params": {"model": "local/bm25"}}],
        "general_settings": {"master_key": MASTER_KEY, "database_url": f"sqlite:///{db}",
                             "spend_flush_interval": 3600, "spend_spill_path": str(spill)},
    }))
    with cli_process(["--config", str(config)], cwd=tmp_path) as (proc, url):
        with background_load(url, BODY) as successes:
            wait_until(lambda: len(successes) >= 600, timeout=120)
        filler = fill(small_volume)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        output = proc.communicate(timeout=10)[0]
    filler.unlink()  # (SQLite maps its -shm file: reading it on a full disk would be a SIGBUS)
    stored = count_rows(f"sqlite:///{db}")
    spilled = len(spill.read_text().splitlines()) if spill.exists() else 0
    if spill_elsewhere:
        assert code == 0 and stored + spilled == len(successes)
        return
    lost = re.search(r"ERROR: (\d+) spend rows were lost", output)
    assert code == 1 and lost, output
    assert stored + spilled + int(lost.group(1)) == len(successes)


def test_the_relay_really_hangs_a_connection(relayed_postgres):
    """The relay freezes without refusing: a connection attempt neither succeeds nor fails within a second."""
    relay, url, _ = relayed_postgres
    relay.freeze()
    engine = sa.create_engine(database_url(url), connect_args={"connect_timeout": 1})
    try:
        with pytest.raises(sa.exc.OperationalError), engine.connect():
            pass
    finally:
        engine.dispose()


@pytest.mark.parametrize("allow", [False, True])
def test_allow_requests_on_db_unavailable_lets_unverifiable_keys_through_restricted(tmp_path, allow):
    unreachable = f"sqlite:///{tmp_path}/no-such-directory/spend.db"  # cannot be opened: the database is down
    config = config_for(None, unreachable, general_settings={"allow_requests_on_db_unavailable": allow,
                                                             "spend_spill_path": str(tmp_path / "spill")})
    with running_proxy(config) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        headers = {"Authorization": "Bearer sk-cannot-be-verified"}
        call = client.post("/v2/rerank", json=BODY, headers=headers)
        assert call.status_code == (200 if allow else 503)
        assert client.get("/key/list", headers=headers).status_code == (403 if allow else 503)  # never admin


def test_proxy_batch_write_at_is_the_spend_flush_interval(fresh_db_url):
    from proxy.settings import ConfigError, parse_config

    with pytest.raises(ConfigError, match="proxy_batch_write_at"):
        parse_config({"general_settings": {"proxy_batch_write_at": 10, "spend_flush_interval": 1}}, {})
    assert parse_config({"general_settings": {"proxy_batch_write_at": 10, "spend_flush_interval": 10}}, {})
    config = config_for(None, fresh_db_url)
    config["general_settings"].pop("spend_flush_interval")
    config["general_settings"]["proxy_batch_write_at"] = 3600
    with running_proxy(config) as server, admin(server.url) as client:
        assert client.post("/v2/rerank", json=BODY).status_code == 200
        assert client.get("/health/readiness").json()["spend_queue"] == 1  # waits for its hour-long batch
        assert count_rows(fresh_db_url) == 0
    assert count_rows(fresh_db_url) == 1  # written at shutdown
