"""The server through real HTTP: the official cohere SDK, curl-shaped calls, admin API, spend, bad input."""

from __future__ import annotations

from datetime import UTC, datetime

import cohere
import httpx
import pytest

from proxy.auth.keys import hash_key
from proxy.spend.store import Store
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.serving import MASTER_KEY, config_for, running_proxy, wait_until

NO_RETRY = {"max_retries": 0}


@pytest.fixture(scope="module")
def db_url(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'spend.db'}"


@pytest.fixture(scope="module")
def proxy_url(fake_cohere, db_url):
    config = config_for(fake_cohere.url, db_url,
                        model_list=[{"model_name": "broken", "litellm_params": {
                            "model": "cohere/rerank-v3.5", "api_key": "os.environ/NOT_SET_ANYWHERE"}}])
    with running_proxy(config) as server:
        yield server.url


@pytest.fixture(scope="module")
def virtual_key(admin_client):
    response = admin_client.post("/key/generate", json={"key_alias": "team-a", "user_id": "alice",
                                                         "metadata": {"team": "a"}})
    assert response.status_code == 200, response.text
    return response.json()["key"]


def test_cohere_v1_client_with_a_virtual_key(proxy_url, virtual_key, fake_cohere):
    client = cohere.Client(base_url=proxy_url, api_key=virtual_key)
    response = client.rerank(model="rerank-english-v3.0", query=CAPITAL_QUERY, documents=CAPITALS, top_n=3,
                             return_documents=True)
    assert len(response.results) == 3
    top = response.results[0]
    assert top.document.text == CAPITALS[top.index]
    assert [r.relevance_score for r in response.results] == sorted(
        (r.relevance_score for r in response.results), reverse=True)
    assert response.meta.billed_units.search_units == 1
    assert response.meta.api_version.version == "1"
    assert fake_cohere.last.headers["authorization"] == "Bearer test-key"


def test_cohere_v2_client_sync_and_async(proxy_url, virtual_key):
    sync = cohere.ClientV2(base_url=proxy_url, api_key=virtual_key).rerank(
        model="rerank-english-v3.0", query=CAPITAL_QUERY, documents=CAPITALS, top_n=2)
    assert len(sync.results) == 2 and sync.meta.api_version.version == "2"

    import asyncio

    async def call():
        client = cohere.AsyncClientV2(base_url=proxy_url, api_key=virtual_key)
        return await client.rerank(model="local-bm25", query=CAPITAL_QUERY, documents=CAPITALS)

    asyn = asyncio.run(call())
    assert asyn.results[0].index == 2 and len(asyn.results) == 4


@pytest.mark.parametrize(
    ("kwargs", "exception"),
    [
        ({"api_key": "sk-not-a-key"}, cohere.UnauthorizedError),
        ({"model": "no-such-alias"}, cohere.NotFoundError),
        ({"query": " "}, cohere.BadRequestError),
        ({"model": "broken"}, cohere.ServiceUnavailableError),
    ],
)
def test_our_statuses_raise_the_sdks_typed_exceptions(proxy_url, virtual_key, kwargs, exception):
    client = cohere.ClientV2(base_url=proxy_url, api_key=kwargs.pop("api_key", virtual_key))
    call = {"model": "rerank-english-v3.0", "query": CAPITAL_QUERY, "documents": CAPITALS, **kwargs}
    with pytest.raises(exception):
        client.rerank(**call, request_options=NO_RETRY)


def test_blocked_key_is_403_for_the_sdk(proxy_url, admin_client):
    key = admin_client.post("/key/generate", json={}).json()["key"]
    assert admin_client.post("/key/block", json={"key": key}).status_code == 200
    with pytest.raises(cohere.ForbiddenError):
        cohere.ClientV2(base_url=proxy_url, api_key=key).rerank(
            model="local-bm25", query="q", documents=["d"], request_options=NO_RETRY)


def test_curl_example_from_the_readme(proxy_url):
    response = httpx.post(proxy_url + "/rerank", headers={"Authorization": f"Bearer {MASTER_KEY}"}, json={
        "model": "rerank-english-v3.0", "query": CAPITAL_QUERY, "documents": CAPITALS, "top_n": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["results"]) == 3 and {"index", "relevance_score"} <= body["results"][0].keys()
    assert response.headers["x-model-deployment"] == "cohere-main"
    assert float(response.headers["x-response-cost"]) == pytest.approx(0.002)
    assert float(response.headers["x-proxy-overhead-ms"]) >= 0
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"[]", 400),
        (b"", 400),
        (b'{"model": "local-bm25", "documents": ["a"]}', 422),
        (b'{"model": "local-bm25", "query": 3, "documents": ["a"]}', 422),
        (b'{"model": "local-bm25", "query": "q", "documents": "a"}', 422),
        (b'{"model": "local-bm25", "query": "q", "documents": ["a"], "top_n": "2"}', 422),
        (b'{"model": "local-bm25", "query": "q", "documents": []}', 400),
        (b'{"model": "local-bm25", "query": "q", "documents": ["a"], "top_n": 0}', 400),
        (b'{"model": "local-bm25", "query": "q", "documents": [{"title": "x"}]}', 400),
        (b'{"model": "nope", "query": "q", "documents": ["a"]}', 404),
    ],
)
def test_bad_input_gets_a_4xx_with_a_message(proxy_url, body, status):
    response = httpx.post(proxy_url + "/v1/rerank", content=body,
                          headers={"Authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"})
    assert response.status_code == status, response.text
    assert isinstance(response.json()["message"], str) and response.json()["message"]


def test_null_optional_fields_are_accepted_and_unknown_fields_are_named_in_meta_warnings(proxy_url):
    response = httpx.post(proxy_url + "/v2/rerank", headers={"Authorization": f"Bearer {MASTER_KEY}"}, json={
        "model": "local-bm25", "query": "q", "documents": ["a q", "b"], "top_n": None, "max_tokens_per_doc": None,
        "return_documents": True, "rank_fields": None, "something_new": 1, "also_null": None})
    assert response.status_code == 200
    assert response.json()["results"][0]["document"] == {"text": "a q"}
    assert response.json()["meta"]["warnings"] == ["'something_new' is not a rerank field and was ignored"]


def test_huge_body_is_413(proxy_url):
    big = b'{"model": "local-bm25", "query": "q", "documents": ["' + b"x" * (11 * 1024 * 1024) + b'"]}'
    response = httpx.post(proxy_url + "/rerank", content=big,
                          headers={"Authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"})
    assert response.status_code == 413 and "limit" in response.json()["message"]


@pytest.mark.parametrize("header", [None, "Basic abc", "Bearer", "Bearer sk-wrong"])
def test_missing_or_bad_keys_are_401(proxy_url, header):
    headers = {"Authorization": header} if header is not None else {}
    response = httpx.post(proxy_url + "/rerank", headers=headers,
                          json={"model": "local-bm25", "query": "q", "documents": ["a"]})
    assert response.status_code == 401 and response.json()["message"]


def test_key_limited_to_some_aliases(proxy_url, admin_client):
    key = admin_client.post("/key/generate", json={"models": ["local-bm25"]}).json()["key"]
    headers = {"Authorization": f"Bearer {key}"}
    models = httpx.get(proxy_url + "/v1/models", headers=headers).json()
    assert [m["id"] for m in models["data"]] == ["local-bm25"]
    denied = httpx.post(proxy_url + "/v2/rerank", headers=headers,
                        json={"model": "rerank-english-v3.0", "query": "q", "documents": ["a"]})
    assert denied.status_code == 403


def test_expired_key_is_403(proxy_url, db_url):
    key = "sk-expired-in-2020"  # the admin API refuses a past `expires`: the key expired while stored
    store = Store.connect(db_url)
    try:
        store.create_key(hash_key(key), expires=datetime(2020, 1, 1, tzinfo=UTC))
    finally:
        store.close()
    response = httpx.post(proxy_url + "/v2/rerank", headers={"Authorization": f"Bearer {key}"},
                          json={"model": "local-bm25", "query": "q", "documents": ["a"]})
    assert response.status_code == 403 and "expired" in response.json()["message"]


def test_admin_routes_need_the_master_key(proxy_url, virtual_key):
    response = httpx.post(proxy_url + "/key/generate", headers={"Authorization": f"Bearer {virtual_key}"}, json={})
    assert response.status_code == 403


def test_key_lifecycle(admin_client):
    created = admin_client.post("/key/generate", json={"key_alias": "lifecycle", "max_budget": 5,
                                                       "budget_duration": "30d", "rpm_limit": 7}).json()
    key = created["key"]
    assert key.startswith("sk-") and created["token"] != key
    info = admin_client.get("/key/info", params={"key": key}).json()
    assert info["info"]["key_alias"] == "lifecycle" and info["info"]["rpm_limit"] == 7
    assert key not in str(info)
    assert admin_client.post("/key/update", json={"key": key, "rpm_limit": 9}).json()["rpm_limit"] == 9
    listed = admin_client.get("/key/list").json()
    assert created["token"] in listed["keys"]
    deleted = admin_client.post("/key/delete", json={"keys": [key]})
    assert deleted.status_code == 200
    assert admin_client.get("/key/info", params={"key": key}).status_code == 404


def test_spend_is_recorded_per_key_and_end_user(proxy_url, admin_client, fake_cohere):
    key = admin_client.post("/key/generate", json={"key_alias": "spender"}).json()["key"]
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "rerank-english-v3.0", "query": CAPITAL_QUERY, "documents": CAPITALS}
    for user in ("bob", "bob", "carol"):
        assert httpx.post(proxy_url + "/v2/rerank", headers=headers, json={**body, "user": user}).status_code == 200
    assert httpx.post(proxy_url + "/v2/rerank", headers={**headers, "x-end-user-id": "dave"},
                      json=body).status_code == 200
    fake_cohere.fail_next("500", times=3)
    failed = httpx.post(proxy_url + "/v2/rerank", headers={**headers, "x-litellm-end-user-id": "bob"}, json=body)
    assert failed.status_code == 503 and failed.headers["retry-after"]

    def logs():
        rows = admin_client.get("/spend/logs", params={"api_key": key}).json()
        return rows if len(rows) == 5 else None

    rows = wait_until(logs)
    assert sorted(r["end_user"] for r in rows) == ["bob", "bob", "bob", "carol", "dave"]
    assert {r["status"] for r in rows} == {200, 503}
    failed_row = next(r for r in rows if r["status"] == 503)
    assert failed_row["error_class"].startswith("AllDeploymentsFailedError") and float(failed_row["cost"]) == 0
    ok_row = next(r for r in rows if r["status"] == 200)
    assert ok_row["deployment"] == "cohere-main" and ok_row["provider"] == "cohere"
    assert ok_row["key_alias"] == "spender" and float(ok_row["search_units"]) == 1
    info = admin_client.get("/key/info", params={"key": key}).json()["info"]
    assert float(info["spend"]) == pytest.approx(0.008)
    bob = admin_client.get("/customer/info", params={"end_user_id": "bob"}).json()
    assert float(bob["spend"]) == pytest.approx(0.004)
    assert "bob" in [c["user_id"] for c in admin_client.get("/customer/list").json()]


def test_customer_admin(admin_client):
    created = admin_client.post("/customer/new", json={"user_id": "erin", "max_budget": 3})
    assert created.status_code == 200 and created.json()["user_id"] == "erin"
    updated = admin_client.post("/customer/update", json={"user_id": "erin", "max_budget": 4}).json()
    assert float(updated["max_budget"]) == 4
    assert admin_client.get("/customer/info", params={"end_user_id": "nobody"}).status_code == 404


def test_health_and_docs(proxy_url):
    assert httpx.get(proxy_url + "/health/liveliness").json()["status"] == "healthy"
    ready = httpx.get(proxy_url + "/health/readiness")
    assert ready.status_code == 200 and ready.json()["db"] == "connected"
    assert httpx.get(proxy_url + "/docs").status_code == 200
    paths = httpx.get(proxy_url + "/openapi.json").json()["paths"]
    assert {"/rerank", "/v1/rerank", "/v2/rerank", "/key/generate", "/spend/logs"} <= paths.keys()


class _BrokenTransport:
    """A bug below the engine (not an upstream failure): the fast path must still answer JSON, not a trace."""

    async def send(self, request):
        raise RuntimeError("a bug, not an upstream failure")

    async def aclose(self) -> None:
        return None


def test_an_unexpected_error_on_the_rerank_route_is_a_json_500_and_a_log_line(tmp_path, caplog):
    from proxy.app import create_app
    from proxy.settings import parse_config
    from tests.fakes.server import LiveServer

    config = config_for("http://127.0.0.1:9", f"sqlite:///{tmp_path / 'spend.db'}")
    app = create_app(parse_config(config, {"TEST_COHERE_KEY": "k"}), transport=_BrokenTransport())
    with caplog.at_level("INFO"), LiveServer(app, lifespan="on") as server:
        response = httpx.post(server.url + "/v2/rerank", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                              json={"model": "rerank-english-v3.0", "query": "q", "documents": ["a"]}, timeout=10)
    assert response.status_code == 500
    assert response.json() == {"message": "internal error; the gateway logged it"}
    assert "Traceback" not in response.text
    assert any(r.name == "proxy.access" and '"status":500' in r.getMessage() for r in caplog.records)
    assert any(r.name == "proxy.engine" and "RuntimeError" in r.getMessage() and r.exc_info for r in caplog.records)
