"""`GET /metrics`: the values move as requests, errors, fallbacks, refusals and background work happen."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy import Router
from proxy.auth.caller import Caller
from proxy.engine import Call, Engine
from proxy.errors import GuardrailBlockedError, RateLimitError
from proxy.observability import Metrics, Telemetry
from proxy.settings import parse_config
from proxy.spend.events import SpendEvent
from proxy.spend.store import Store
from proxy.spend.writer import SpendWriter
from proxy.wire import RerankBody
from tests.serving import MASTER_KEY, admin, cli_process, config_for, running_proxy

BODY = {"query": "capital of the United States", "documents": ["Washington is the capital.", "Paris is in France."]}
MASTER = {"Authorization": f"Bearer {MASTER_KEY}"}


def value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def scrape(url: str, **headers: str) -> str:
    response = httpx.get(url + "/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


@pytest.fixture(scope="module")
def server(fake_cohere, tmp_path_factory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("metrics") / "spend.db"
    config = config_for(fake_cohere.url, f"sqlite:///{db}", router_settings={
        "num_retries": 1, "fallbacks": [{"rerank-english-v3.0": ["local-bm25"]}]},
        model_list=[
            {"model_name": "cohere-solo", "model_info": {"id": "cohere-solo"},
             "litellm_params": {"model": "cohere/rerank-english-v3.0", "api_key": "os.environ/TEST_COHERE_KEY",
                                "api_base": fake_cohere.url}},
            {"model_name": "needs-key", "model_info": {"id": "needs-key"},
             "litellm_params": {"model": "cohere/rerank-english-v3.0", "api_key": "os.environ/UNSET_KEY_FOR_TEST"}},
        ])
    with running_proxy(config) as live:
        yield live.url


def rerank(url: str, model: str, headers: dict[str, str] | None = None, **extra) -> httpx.Response:
    return httpx.post(url + "/v1/rerank", headers=headers or MASTER, json={"model": model, **BODY, **extra},
                      timeout=30)


def test_requests_latencies_and_units_move_with_traffic(server):
    before = scrape(server)
    for _ in range(3):
        assert rerank(server, "local-bm25").status_code == 200
    after = scrape(server)
    ok = {"requested_model": "local-bm25", "model_id": "local-bm25#0", "api_provider": "local",
          "status_code": "200", "api_key_alias": "master_key"}
    assert value(after, "rerank_proxy_requests_total", **ok) - value(before, "rerank_proxy_requests_total", **ok) == 3
    for histogram in ("rerank_proxy_request_duration_seconds", "rerank_proxy_overhead_duration_seconds",
                      "rerank_proxy_upstream_duration_seconds"):
        name = histogram + "_count"
        assert value(after, name, requested_model="local-bm25") - value(before, name, requested_model="local-bm25") == 3
    units = "rerank_proxy_search_units_total"
    assert value(after, units, requested_model="local-bm25") - value(before, units, requested_model="local-bm25") == 3


def test_spend_is_counted_by_key_alias_and_end_user(server, fake_cohere):
    fake_cohere.reset()
    key = admin(server).post("/key/generate", json={"key_alias": "team-a"}).json()["key"]
    response = rerank(server, "rerank-english-v3.0", {"Authorization": f"Bearer {key}"}, user="alice")
    assert response.status_code == 200
    cost = float(response.headers["x-response-cost"])
    assert cost > 0
    text = scrape(server)
    labels = {"requested_model": "rerank-english-v3.0", "api_key_alias": "team-a", "end_user": "alice"}
    assert value(text, "rerank_proxy_spend_usd_total", **labels) == pytest.approx(cost)
    assert value(text, "rerank_proxy_search_units_total", **labels) == 1


def test_fallbacks_retries_and_failed_attempts_are_counted(server, fake_cohere):
    fake_cohere.reset()
    before = scrape(server)
    fake_cohere.fail_next("500", times=2)  # both tries on the Cohere deployment fail; local-bm25 answers
    response = rerank(server, "rerank-english-v3.0")
    assert response.status_code == 200 and response.headers["x-fallback-used"] == "true"
    after = scrape(server)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("rerank_proxy_fallbacks_total", requested_model="rerank-english-v3.0",
                 fallback_model="local-bm25") == 1
    assert moved("rerank_proxy_deployment_failures_total", model_id="cohere-main", api_provider="cohere",
                 exception_class="UpstreamUnavailableError") == 2
    assert moved("rerank_proxy_retries_total", requested_model="rerank-english-v3.0") == 2


def test_errors_are_counted_by_status_and_class(server, fake_cohere):
    fake_cohere.reset()
    before = scrape(server)
    fake_cohere.fail_next("400")  # the provider refuses the request: not retried, no fallback
    assert rerank(server, "cohere-solo").status_code == 400
    assert rerank(server, "no-such-model").status_code == 404
    assert rerank(server, "local-bm25", {"Authorization": "Bearer sk-wrong"}).status_code == 401
    after = scrape(server)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("rerank_proxy_failed_requests_total", requested_model="cohere-solo", status_code="400",
                 exception_class="UpstreamRejectedError") == 1
    assert moved("rerank_proxy_requests_total", requested_model="cohere-solo", status_code="400") == 1
    # An unknown model name is the caller's text: counted, but never used as a label value.
    assert moved("rerank_proxy_failed_requests_total", requested_model="", status_code="404",
                 exception_class="ModelNotFoundError") == 1
    assert "no-such-model" not in after
    # Refused before the engine: still one request, with its status.
    assert moved("rerank_proxy_requests_total", requested_model="", status_code="401") == 1
    assert moved("rerank_proxy_failed_requests_total", status_code="401", exception_class="AuthenticationError") == 1


def test_deployment_state_shows_deployments_that_cannot_be_called(server):
    text = scrape(server)
    assert value(text, "rerank_proxy_deployment_state", model_id="needs-key", api_provider="cohere") == 2
    assert value(text, "rerank_proxy_deployment_state", model_id="cohere-main",
                 requested_model="rerank-english-v3.0") == 0
    assert value(text, "rerank_proxy_in_flight_requests") == 1  # the scrape itself
    assert value(text, "rerank_proxy_spend_queue_depth") >= 0


class CoolingRouter(Router):
    """A router that reports cooldowns, as `Router.deployment_states()` does once routing health lands."""

    def deployment_states(self) -> dict[str, str]:
        return {"b": "cooling_down"}


def test_deployment_state_reads_router_cooldowns_when_the_router_reports_them():
    router = CoolingRouter(model_list=[
        {"model_name": "m", "litellm_params": {"model": "local/bm25"}, "model_info": {"id": "a"}},
        {"model_name": "m", "litellm_params": {"model": "local/bm25"}, "model_info": {"id": "b"}},
    ])
    metrics = Metrics()
    metrics.watch(router=router)
    text = metrics.render().decode()
    assert value(text, "rerank_proxy_deployment_state", model_id="a") == 0
    assert value(text, "rerank_proxy_deployment_state", model_id="b") == 1


class Refusing:
    """Governance checks that refuse: a guardrail for "blocked" queries, a rate limit for the rest."""

    async def before(self, call: Call) -> None:
        if call.body.query == "blocked":
            call.guardrails.append({"guardrail": "no-blocked-word", "action": "block"})
            raise GuardrailBlockedError("no-blocked-word")
        raise RateLimitError("rate limit exceeded for this key", retry_after=3)

    def after(self, call: Call) -> None:
        return None


async def test_end_user_labels_can_be_left_empty_as_litellm_allows():
    settings = parse_config({"litellm_settings": {"disable_end_user_cost_tracking_prometheus_only": True}}, {})
    telemetry = Telemetry(settings)
    engine = Engine(Router(model_list=[{"model_name": "local-bm25", "litellm_params": {"model": "local/bm25"}}]),
                    observers=[telemetry])
    for user in ("alice", "bob"):
        await engine.rerank(Call(body=RerankBody(model="local-bm25", query="q", documents=["a"], user=user),
                                 caller=Caller(key_alias="team-c"), api_version=2, end_user=user))
    text = telemetry.metrics.render().decode()
    assert value(text, "rerank_proxy_search_units_total", api_key_alias="team-c", end_user="") == 2
    assert "alice" not in text and "bob" not in text


async def test_end_user_series_are_capped_and_their_values_cut(caplog):
    settings = parse_config({"general_settings": {"metrics_end_user_series": 5}}, {})
    telemetry = Telemetry(settings)
    engine = Engine(Router(model_list=[{"model_name": "local-bm25", "litellm_params": {"model": "local/bm25"}}]),
                    observers=[telemetry])
    with caplog.at_level("INFO", logger="proxy.access"):
        for n in range(40):
            user = f"user-{n:03d}-" + "x" * 1_000
            await engine.rerank(Call(body=RerankBody(model="local-bm25", query="q", documents=["a"], user=user),
                                     caller=Caller(key_alias="team-d"), api_version=2, end_user=user))
    text = telemetry.metrics.render().decode()
    users = {s.labels["end_user"] for f in text_string_to_metric_families(text) for s in f.samples
             if s.name == "rerank_proxy_search_units_total" and s.labels.get("api_key_alias") == "team-d"}
    assert len(users) == 6 and "__other__" in users and max(map(len, users)) == 64
    assert value(text, "rerank_proxy_search_units_total", api_key_alias="team-d", end_user="__other__") == 35
    assert len(text) < 20_000
    lines = [r.getMessage() for r in caplog.records if "user-039" in r.getMessage()]
    assert len(lines) == 1 and len(lines[0]) < 2_000  # the 1 KB end-user id is cut in the log line


def test_metrics_accept_a_separate_scraper_token(tmp_path):
    token = "scrape-0123456789abcdef"
    config = config_for(None, f"sqlite:///{tmp_path / 'auth.db'}",
                        general_settings={"metrics_token": "os.environ/METRICS_TOKEN"})
    with running_proxy(config, {"METRICS_TOKEN": token}) as live:
        assert httpx.get(live.url + "/metrics").status_code == 401
        assert httpx.get(live.url + "/metrics", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
        key = admin(live.url).post("/key/generate", json={}).json()["key"]
        assert httpx.get(live.url + "/metrics", headers={"Authorization": f"Bearer {key}"}).status_code == 403
        assert "rerank_proxy_requests_total" in scrape(live.url, Authorization=f"Bearer {token}")
        assert "rerank_proxy_requests_total" in scrape(live.url, **MASTER)


async def test_guardrail_blocks_and_limit_refusals_are_counted():
    telemetry = Telemetry(parse_config({}, {}))
    router = Router(model_list=[{"model_name": "local-bm25", "litellm_params": {"model": "local/bm25"}}])
    telemetry.metrics.watch(router=router)
    engine = Engine(router, checks=Refusing(), observers=[telemetry])
    caller = Caller(key_alias="team-b", key_hash="h")
    for query, error in (("blocked", GuardrailBlockedError), ("fine", RateLimitError), ("fine", RateLimitError)):
        call = Call(body=RerankBody(model="local-bm25", query=query, documents=["a", "b"]), caller=caller,
                    api_version=2)
        with pytest.raises(error):
            await engine.rerank(call)
    text = telemetry.metrics.render().decode()
    assert value(text, "rerank_proxy_guardrail_blocks_total", guardrail="no-blocked-word",
                 api_key_alias="team-b") == 1
    assert value(text, "rerank_proxy_limit_refusals_total", requested_model="local-bm25", api_key_alias="team-b") == 2
    assert value(text, "rerank_proxy_requests_total", status_code="429") == 2


@contextlib.asynccontextmanager
async def _writer_over_a_locked_database(tmp_path, **options):
    """(writer, metrics watching it, the connection holding SQLite's write lock until ROLLBACK)."""
    store = Store.connect(f"sqlite:///{tmp_path / 'spend.db'}", busy_timeout_ms=50)
    writer = SpendWriter(store, flush_interval=0.01, retry_base=0.01, retry_max=0.05, **options)
    metrics = Metrics()
    metrics.watch(writer=writer)
    holder = sqlite3.connect(str(tmp_path / "spend.db"), isolation_level=None, timeout=5)
    holder.execute("BEGIN EXCLUSIVE")  # the database refuses writes until ROLLBACK
    await writer.start()
    try:
        yield writer, metrics, holder
    finally:
        holder.close()
        await writer.stop()
        store.close()


def _event(request_id: str) -> SpendEvent:
    return SpendEvent(request_id=request_id, started_at=datetime.now(UTC), model_alias="m", status=200,
                      latency_ms=1.0, cost=Decimal("0.001"))


async def test_spend_queue_depth_and_write_failures_are_read_at_scrape_time(tmp_path):
    async with _writer_over_a_locked_database(tmp_path) as (writer, metrics, holder):
        for n in range(4):
            writer.submit(_event(f"r{n}"))
        await _eventually(lambda: writer.failures >= 2)
        text = metrics.render().decode()
        assert value(text, "rerank_proxy_spend_queue_depth") == 4
        assert value(text, "rerank_proxy_spend_write_failures_total") >= 2
        holder.execute("ROLLBACK")
        await _eventually(lambda: writer.depth == 0)
        assert value(metrics.render().decode(), "rerank_proxy_spend_queue_depth") == 0


async def test_journal_bytes_are_read_at_scrape_time(tmp_path):
    async with _writer_over_a_locked_database(tmp_path, spill_path=tmp_path / "spill") as (writer, metrics, holder):
        writer.submit(_event("r"))
        await _eventually(lambda: writer.spilled == 1)
        assert value(metrics.render().decode(), "rerank_proxy_spend_journal_bytes") > 0
        holder.execute("ROLLBACK")
        await _eventually(lambda: writer.written == 1 and writer.spill_bytes() == 0)
        assert value(metrics.render().decode(), "rerank_proxy_spend_journal_bytes") == 0


async def _eventually(predicate, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_each_app_keeps_its_own_registry(server, tmp_path):
    assert rerank(server, "local-bm25").status_code == 200
    with running_proxy(config_for(None, f"sqlite:///{tmp_path / 'other.db'}")) as other:
        text = scrape(other.url)
        assert value(text, "rerank_proxy_requests_total", requested_model="local-bm25") == 0
        assert rerank(other.url, "local-bm25").status_code == 200
        assert value(scrape(other.url), "rerank_proxy_requests_total", requested_model="local-bm25") == 1
    assert value(scrape(server), "rerank_proxy_requests_total", requested_model="local-bm25") >= 1


def test_metrics_can_require_the_master_key(tmp_path):
    config = config_for(None, f"sqlite:///{tmp_path / 'auth.db'}", general_settings={"metrics_require_auth": True})
    with running_proxy(config) as live:
        assert httpx.get(live.url + "/metrics").status_code == 401
        key = admin(live.url).post("/key/generate", json={}).json()["key"]
        assert httpx.get(live.url + "/metrics", headers={"Authorization": f"Bearer {key}"}).status_code == 403
        assert "rerank_proxy_requests_total" in scrape(live.url, **MASTER)


def test_litellm_metrics_auth_setting_is_accepted(tmp_path):
    config = config_for(None, f"sqlite:///{tmp_path / 'auth.db'}",
                        litellm_settings={"require_auth_for_metrics_endpoint": True, "callbacks": ["prometheus"]})
    with running_proxy(config) as live:
        assert httpx.get(live.url + "/metrics").status_code == 401
        assert httpx.get(live.url + "/metrics", headers=MASTER).status_code == 200


def test_workers_share_metrics_and_the_cli_removes_their_directory(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n  - model_name: local-bm25\n    litellm_params: {model: local/bm25}\n"
        f"general_settings: {{master_key: {MASTER_KEY}, database_url: 'sqlite:///{tmp_path / 'spend.db'}'}}\n"
    )
    with cli_process(["--config", str(config), "--num_workers", "2"], cwd=tmp_path) as (proc, url):
        directory = Path(re.search(r"aggregated through (\S+)", proc.output).group(1))

        def writers() -> int:
            return len({path.stem.rsplit("_", 1)[1] for path in directory.glob("counter_*.db")})

        sent = 0
        while sent < 10 or (writers() < 2 and sent < 400):  # new connections until both workers have served
            response = httpx.post(url + "/v2/rerank", headers=MASTER, json={"model": "local-bm25", **BODY})
            assert response.status_code == 200
            sent += 1
        assert writers() == 2
        # Any worker may answer a scrape; each sees every request.
        for _ in range(6):
            with httpx.Client(base_url=url, timeout=30) as fresh:  # a new connection, maybe another worker
                text = fresh.get("/metrics").text
            assert value(text, "rerank_proxy_requests_total", requested_model="local-bm25", status_code="200") == sent
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0
    found = re.search(r"aggregated through (\S+)", output)
    assert found, output
    assert not Path(found.group(1)).exists()


def test_the_operations_page_lists_every_metric_and_no_other():
    families = text_string_to_metric_families(Metrics().render().decode())
    exported = {f.name + "_total" if f.type == "counter" else f.name for f in families
                if not f.name.endswith("_created")}
    page = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    table = page[page.index("| `rerank_proxy_requests_total`"):page.index("## Logs")]
    assert set(re.findall(r"`(rerank_proxy_\w+)`", table)) == exported
