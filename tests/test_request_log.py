"""One JSON line per request on `proxy.access`, with no key, query or document in any log line."""

from __future__ import annotations

import json
import logging
import signal

import httpx
import pytest

from tests.serving import MASTER_KEY, admin, cli_process, config_for, running_proxy

QUERY = "zebra quantum pineapple capital"
DOCUMENTS = ["Washington zebra capital document-alpha-7731", "Paris quantum document-beta-9902"]
BOGUS_KEY = "sk-bogus-secret-4417"
MASTER = {"Authorization": f"Bearer {MASTER_KEY}"}


def secrets_in(text: str, *extra: str) -> list[str]:
    needles = [MASTER_KEY, BOGUS_KEY, QUERY, "zebra", *DOCUMENTS, "document-alpha", "document-beta", *extra]
    return [needle for needle in needles if needle in text]


def access_lines(records: list[logging.LogRecord]) -> list[dict]:
    return [json.loads(r.getMessage()) for r in records if r.name == "proxy.access"]


@pytest.fixture
def capture(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def test_one_line_per_request_with_the_call_and_nothing_secret(fake_cohere, tmp_path, capture):
    fake_cohere.reset()
    config = config_for(fake_cohere.url, f"sqlite:///{tmp_path / 'spend.db'}",
                        general_settings={"max_request_size_mb": 0.001})
    with running_proxy(config) as live:
        key = admin(live.url).post("/key/generate", json={"key_alias": "team-log"}).json()["key"]
        capture.clear()
        ok = httpx.post(live.url + "/v1/rerank", headers={"Authorization": f"Bearer {key}", "x-end-user-id": "bob"},
                        json={"model": "rerank-english-v3.0", "query": QUERY, "documents": DOCUMENTS})
        assert ok.status_code == 200
        refused = httpx.post(live.url + "/v2/rerank", headers={"Authorization": f"Bearer {BOGUS_KEY}"},
                             json={"model": "local-bm25", "query": QUERY, "documents": DOCUMENTS})
        assert refused.status_code == 401
        too_large = httpx.post(live.url + "/rerank", headers=MASTER,
                               json={"model": "local-bm25", "query": QUERY, "documents": DOCUMENTS * 100})
        assert too_large.status_code == 413
        assert httpx.get(live.url + "/key/info", params={"key": key}, headers=MASTER).status_code == 200
        assert httpx.get(live.url + "/no/such/path").status_code == 404
        records = list(capture.records)

    lines = access_lines(records)
    rerank_lines = [line for line in lines if line["event"] == "rerank"]
    assert len(rerank_lines) == 3  # one per /rerank call, whether or not it reached the engine
    served = next(line for line in rerank_lines if line["status"] == 200)
    assert served["request_id"] == ok.headers["x-request-id"]
    assert served["key_alias"] == "team-log" and served["end_user"] == "bob"
    assert served["model"] == "rerank-english-v3.0" and served["deployment"] == "cohere-main"
    assert served["provider"] == "cohere" and served["fallback_used"] is False and served["error_class"] is None
    assert served["cost"] == pytest.approx(float(ok.headers["x-response-cost"]))
    assert served["latency_ms"] >= served["overhead_ms"] >= 0
    assert {(line["status"], line["error_class"]) for line in rerank_lines if line["status"] != 200} == {
        (401, "AuthenticationError"), (413, "PayloadTooLargeError")}
    paths = {line["path"]: line["status"] for line in lines if line["event"] == "http"}
    assert paths == {"/key/info": 200, "/no/such/path": 404}  # no query string, so no key

    # Nothing the server logged, at any level, carries a key, the query or a document. (The test's own
    # httpx client logs the URLs it calls, key included: it is not the server.)
    server_text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in records
                            if not r.name.startswith(("httpx", "httpcore")))
    assert secrets_in(server_text, key) == []


def test_the_cli_logs_json_lines_to_stderr_with_no_secret_even_in_debug(fake_cohere, tmp_path):
    fake_cohere.reset()
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: local-bm25\n    litellm_params: {model: local/bm25}\n"
        "  - model_name: cohere\n"
        f"    litellm_params: {{model: cohere/rerank-english-v3.0, api_key: os.environ/TEST_COHERE_KEY, "
        f"api_base: '{fake_cohere.url}'}}\n"
        "  - model_name: unset\n"
        "    litellm_params: {model: cohere/rerank-v3.5, api_key: os.environ/UNSET_VARIABLE_FOR_LOG_TEST}\n"
        f"general_settings: {{master_key: {MASTER_KEY}, database_url: 'sqlite:///{tmp_path / 'spend.db'}'}}\n"
        "litellm_settings: {json_logs: true}\n"
    )
    upstream_key = "upstream-secret-5521"
    fake_cohere.api_key = upstream_key
    try:
        with cli_process(["--config", str(config), "--detailed_debug"], env={"TEST_COHERE_KEY": upstream_key},
                         cwd=tmp_path) as (proc, url):
            with httpx.Client(base_url=url, headers=MASTER, timeout=30) as client:
                key = client.post("/key/generate", json={"key_alias": "cli"}).json()["key"]
                body = {"query": QUERY, "documents": DOCUMENTS}
                auth = {"Authorization": f"Bearer {key}"}
                assert client.post("/v1/rerank", headers=auth, json={"model": "cohere", **body}).status_code == 200
                assert client.post("/v2/rerank", headers=auth, json={"model": "local-bm25", **body}).status_code == 200
                assert client.post("/v2/rerank", headers={"Authorization": f"Bearer {BOGUS_KEY}"},
                                   json={"model": "local-bm25", **body}).status_code == 401
                assert client.get("/key/info", params={"key": key}).status_code == 200
            proc.send_signal(signal.SIGTERM)
            output = proc.communicate(timeout=60)[0]
    finally:
        fake_cohere.api_key = "test-key"
    assert proc.returncode == 0
    assert secrets_in(output, key, upstream_key) == []
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    reranks = [r for r in records if r.get("event") == "rerank"]
    assert sorted(r["status"] for r in reranks) == [200, 200, 401]
    assert {r["model"] for r in reranks} == {"cohere", "local-bm25", None}
    # json_logs: the other loggers write JSON too (here the start-up warning about the missing variable).
    warning = [r for r in records if r.get("level") == "WARNING" and "UNSET_VARIABLE_FOR_LOG_TEST" in r["message"]]
    assert warning and warning[0]["logger"] == "proxy"
    assert any(r.get("level") == "DEBUG" for r in records)  # --detailed_debug is verbose
