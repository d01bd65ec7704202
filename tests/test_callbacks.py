"""Logging callbacks: the batched webhook, a user's class by import path, OpenTelemetry traces.

A callback sees every call (the same fields as the request log, never the query, documents or keys), and
a dead or broken callback never fails or holds up a request.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from proxy import Router
from proxy.app import create_app
from proxy.auth.caller import Caller
from proxy.callbacks import build_callbacks
from proxy.engine import Call, Engine
from proxy.errors import GuardrailBlockedError
from proxy.observability import Telemetry
from proxy.settings import ConfigError, load_settings, parse_config
from proxy.wire import RerankBody
from tests.fakes.server import LiveServer, free_port
from tests.serving import MASTER_KEY, config_for, running_proxy, wait_until
from tests.test_metrics import value
from tests.webhook_receiver import WebhookReceiver

QUERY = "octopus lighthouse capital"
DOCUMENTS = ["octopus document-one-4471", "lighthouse capital document-two-8812"]
MASTER = {"Authorization": f"Bearer {MASTER_KEY}"}


def rerank(url: str, model: str = "local-bm25", **headers: str) -> httpx.Response:
    return httpx.post(url + "/v2/rerank", headers={**MASTER, **headers},
                      json={"model": model, "query": QUERY, "documents": DOCUMENTS}, timeout=30)


def assert_no_content(raw: str) -> None:
    for needle in (QUERY, "octopus", "document-one", "document-two", MASTER_KEY, "test-key"):
        assert needle not in raw


# -- webhook -----------------------------------------------------------------------------------------

def test_webhook_receives_batched_events_with_the_log_fields(tmp_path):
    with WebhookReceiver() as hook:
        config = config_for(None, f"sqlite:///{tmp_path / 'spend.db'}", litellm_settings={
            "callbacks": ["webhook"],
            "callback_settings": {"webhook": {"url": hook.url, "batch_size": 5, "flush_interval": 0.2,
                                              "headers": {"x-hook-token": "os.environ/HOOK_TOKEN"}}}})
        with running_proxy(config, {"HOOK_TOKEN": "hook-secret"}) as live:
            ids = [rerank(live.url, **{"x-end-user-id": f"user-{n}"}).headers["x-request-id"] for n in range(12)]
            wait_until(lambda: len(hook.events) == 12)
        events = hook.events
    assert sorted(e["request_id"] for e in events) == sorted(ids)
    assert max(len(batch) for batch in hook.batches) > 1 and all(len(b) <= 5 for b in hook.batches)
    assert all(h["x-hook-token"] == "hook-secret" and h["content-type"] == "application/json" for h in hook.headers)
    first = events[0]
    assert {"request_id", "key_alias", "end_user", "model", "deployment", "status", "latency_ms", "overhead_ms",
            "cost", "error_class", "fallback_used"} <= first.keys()
    assert first["model"] == "local-bm25" and first["status"] == 200 and first["key_alias"] == "master_key"
    assert {e["end_user"] for e in events} == {f"user-{n}" for n in range(12)}
    assert_no_content("".join(raw.decode() for raw in hook.raw))


def test_webhook_retries_a_failing_endpoint_and_then_delivers(tmp_path):
    with WebhookReceiver() as hook:
        hook.fail_next(2)
        config = config_for(None, f"sqlite:///{tmp_path / 'spend.db'}", litellm_settings={
            "callbacks": ["webhook"],
            "callback_settings": {"webhook": {"url": hook.url, "batch_size": 10, "flush_interval": 0.05,
                                              "max_retries": 3}}})
        with running_proxy(config) as live:
            request_id = rerank(live.url).headers["x-request-id"]
            wait_until(lambda: len(hook.events) == 1)
            text = httpx.get(live.url + "/metrics").text
        assert hook.events[0]["request_id"] == request_id
    assert value(text, "rerank_proxy_callback_events_total", callback="webhook", result="delivered") == 1


def test_a_dead_webhook_costs_no_request(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/hook"  # connection refused
    config = config_for(None, f"sqlite:///{tmp_path / 'spend.db'}", litellm_settings={
        "callbacks": ["webhook"],
        "callback_settings": {"webhook": {"url": dead, "batch_size": 2, "flush_interval": 0.01, "max_retries": 1,
                                          "drain_timeout": 1}}})
    with running_proxy(config) as live:
        statuses = [rerank(live.url).status_code for _ in range(20)]
        assert statuses == [200] * 20

        def failed() -> float:
            text = httpx.get(live.url + "/metrics").text
            return value(text, "rerank_proxy_callback_events_total", callback="webhook", result="failed")

        assert wait_until(lambda: failed() >= 2)


def test_webhook_settings_are_checked_at_start():
    with pytest.raises(ConfigError, match="webhook.url is required"):
        Telemetry(parse_config({"litellm_settings": {"callbacks": ["webhook"]}}, {}))
    with pytest.raises(ConfigError, match="unknown key"):
        Telemetry(parse_config({"litellm_settings": {"callbacks": ["webhook"], "callback_settings": {
            "webhook": {"url": "http://x", "batchsize": 3}}}}, {}))


# -- a user's class by import path ---------------------------------------------------------------------

CALLBACK_MODULE = '''
import asyncio

EVENTS = []


class SyncLogger:
    def log_success_event(self, event):
        EVENTS.append(("sync-success", event))

    def log_failure_event(self, event):
        EVENTS.append(("sync-failure", event))


class AsyncLogger:
    async def log_success_event(self, event):
        await asyncio.sleep(0)
        EVENTS.append(("async-success", event))

    async def log_failure_event(self, event):
        await asyncio.sleep(0)
        EVENTS.append(("async-failure", event))


class Broken:
    def log_success_event(self, event):
        raise RuntimeError("a bug in the user's callback")

    log_failure_event = log_success_event


instance = SyncLogger()
'''


@contextmanager
def proxy_from_file(config: dict[str, Any], directory: Path, environ: dict[str, str] | None = None,
                    **app_options: Any) -> Iterator[LiveServer]:
    path = directory / "config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    settings = load_settings(path, {"TEST_COHERE_KEY": "test-key", **(environ or {})})
    with LiveServer(create_app(settings, **app_options), lifespan="on") as server:
        yield server


def test_import_path_callbacks_get_success_and_failure_events(tmp_path):
    module = f"user_callbacks_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(CALLBACK_MODULE))  # next to the config file
    config = config_for(None, f"sqlite:///{tmp_path / 'spend.db'}", litellm_settings={
        "callbacks": [f"{module}:Broken"],
        "success_callback": [f"{module}:SyncLogger"],
        "failure_callback": [f"{module}:AsyncLogger", f"{module}.instance"]})
    try:
        with proxy_from_file(config, tmp_path) as live:
            ok = rerank(live.url)
            missing = rerank(live.url, "no-such-model")
            assert (ok.status_code, missing.status_code) == (200, 404)
            events = importlib.import_module(module).EVENTS
            wait_until(lambda: len(events) == 3)
    finally:
        sys.modules.pop(module, None)
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))
    kinds = {kind: event for kind, event in events}
    assert set(kinds) == {"sync-success", "async-failure", "sync-failure"}
    assert kinds["sync-success"]["request_id"] == ok.headers["x-request-id"]
    assert kinds["async-failure"]["status"] == 404 and kinds["async-failure"]["error_class"] == "ModelNotFoundError"
    assert_no_content(json.dumps([event for _, event in events]))


def test_a_callback_that_cannot_be_imported_stops_the_start(tmp_path):
    with pytest.raises(ConfigError, match="cannot import"):
        Telemetry(parse_config({"litellm_settings": {"callbacks": ["no_such_module_xyz:Logger"]}}, {}))
    with pytest.raises(ConfigError, match="neither log_success_event nor log_failure_event"):
        Telemetry(parse_config({"litellm_settings": {"callbacks": ["json:JSONDecoder"]}}, {}))


def test_unavailable_litellm_integrations_are_reported_and_ignored(caplog):
    callbacks = build_callbacks(parse_config({"litellm_settings": {"callbacks": ["prometheus", "langfuse"]}},
                                             {}).config.litellm_settings, {})
    assert not callbacks
    assert "callback 'langfuse' is not available" in caplog.text


# -- OpenTelemetry -------------------------------------------------------------------------------------

@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def test_otel_traces_a_request_with_a_span_per_upstream_attempt(fake_cohere, tmp_path, spans):
    provider, exporter = spans
    fake_cohere.reset()
    config = config_for(fake_cohere.url, f"sqlite:///{tmp_path / 'spend.db'}",
                        litellm_settings={"callbacks": ["otel"]}, router_settings={"num_retries": 1})
    with proxy_from_file(config, tmp_path, tracer_provider=provider) as live:
        fake_cohere.fail_next("503")  # the first attempt fails, the retry answers
        response = rerank(live.url, "rerank-english-v3.0")
        assert response.status_code == 200
        wait_until(lambda: any(s.name == "rerank" for s in exporter.get_finished_spans()))
    finished = exporter.get_finished_spans()
    root = next(s for s in finished if s.name == "rerank")
    assert root.kind == SpanKind.SERVER
    assert root.attributes["rerank.request_id"] == response.headers["x-request-id"]
    assert root.attributes["rerank.deployment"] == "cohere-main" and root.attributes["rerank.attempts"] == 2
    attempts = sorted((s for s in finished if s.name == "upstream cohere"), key=lambda s: s.start_time)
    assert [s.parent.span_id for s in attempts] == [root.context.span_id] * 2
    assert [s.status.status_code for s in attempts] == [StatusCode.ERROR, StatusCode.UNSET]
    assert attempts[0].attributes["error.type"] == "UpstreamUnavailableError"
    assert root.start_time <= attempts[0].start_time <= attempts[0].end_time <= attempts[1].start_time
    assert attempts[1].end_time <= root.end_time
    assert_no_content(json.dumps([dict(s.attributes) for s in finished]))


class Guarded:
    """A guardrail check that records its decision and blocks, as the governance checks do."""

    async def before(self, call: Call) -> None:
        call.guardrails.append({"name": "no-sea-creatures", "type": "banned_keywords", "action": "blocked",
                                "matched": call.body.query})
        raise GuardrailBlockedError("no-sea-creatures")

    def after(self, call: Call) -> None:
        return None


async def test_otel_traces_guardrails_as_child_spans(spans):
    provider, exporter = spans
    telemetry = Telemetry(parse_config({"litellm_settings": {"callbacks": ["otel"]}}, {}),
                          tracer_provider=provider)
    router = Router(model_list=[{"model_name": "local-bm25", "litellm_params": {"model": "local/bm25"}}])
    engine = Engine(router, checks=Guarded(), observers=[telemetry])
    await telemetry.start(router=router)
    call = Call(body=RerankBody(model="local-bm25", query=QUERY, documents=DOCUMENTS), caller=Caller(),
                api_version=2)
    with pytest.raises(GuardrailBlockedError):
        await engine.rerank(call)
    await telemetry.stop()  # drains the queue: the spans are built
    finished = {s.name: s for s in exporter.get_finished_spans()}
    root, guardrail = finished["rerank"], finished["guardrail no-sea-creatures"]
    assert guardrail.parent.span_id == root.context.span_id
    assert guardrail.attributes["guardrail.action"] == "blocked"
    assert guardrail.attributes["guardrail.type"] == "banned_keywords"
    assert root.status.status_code == StatusCode.ERROR
    assert root.attributes["http.response.status_code"] == 400
    assert not any(name.startswith("upstream") for name in finished)
    assert_no_content(json.dumps([dict(s.attributes) for s in finished.values()]))  # "matched" is never copied


def test_check_reports_callback_problems(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("litellm_settings:\n  callbacks: [webhook, 'missing_module_for_check:Logger']\n"
                      "  callback_settings: {webhook: {url: 'http://127.0.0.1:9/hook'}}\n")
    result = subprocess.run([sys.executable, "-m", "proxy", "--config", str(config), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "missing_module_for_check" in result.stderr
