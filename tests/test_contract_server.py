"""The provider contract through the server: `/v1/rerank` and `/v2/rerank` over real HTTP, each provider
behind a proxy alias pointing at its strict fake; statuses, the exact upstream request and a spend row."""

from __future__ import annotations

import httpx
import pytest

from proxy.providers import REGISTRY
from proxy.wire import RerankResponse
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.catalog import CASES
from tests.serving import MASTER_KEY, config_for, running_proxy, wait_until
from tests.test_contract import HTTP_PROVIDERS, assert_invariants

HEADERS = {"Authorization": f"Bearer {MASTER_KEY}"}


class Served:
    def __init__(self, case, fake, url):
        self.case, self.fake, self.url = case, fake, url

    def post(self, version: str, **body):
        payload = {"model": "contract", "query": CAPITAL_QUERY, "documents": CAPITALS, **body}
        return httpx.post(f"{self.url}/{version}/rerank", headers=HEADERS, json=payload, timeout=30)


@pytest.fixture(scope="module", params=HTTP_PROVIDERS)
def served(request, tmp_path_factory):
    case = CASES[request.param]
    fake = case.fake().start()
    deployment = {"model_name": "contract", "litellm_params": {"model": case.model, **case.params(fake)},
                  "model_info": {"id": f"{request.param}-fake"}}
    db = tmp_path_factory.mktemp(request.param) / "spend.db"
    config = config_for(None, f"sqlite:///{db}", model_list=[deployment], router_settings={"num_retries": 0})
    try:
        with running_proxy(config, environ=dict(case.env)) as server:
            yield Served(case, fake, server.url)
    finally:
        fake.stop()


@pytest.fixture
def proxy(served):
    served.fake.reset()
    return served


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_serves_a_cohere_response_from_the_exact_upstream_request(proxy, version):
    response = proxy.post(version, top_n=2, return_documents=True)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["meta"]["api_version"]["version"] == version[1]
    assert len(body["results"]) == 2
    assert_invariants(RerankResponse.model_validate(body), CAPITALS, 2)
    assert all(r["document"]["text"] == CAPITALS[r["index"]] for r in body["results"])
    path, expected = proxy.case.expected(proxy.fake, CAPITAL_QUERY, CAPITALS, 2)
    assert proxy.fake.last.path == path and proxy.fake.last.body == expected
    assert response.headers["x-model-deployment"].endswith("-fake")


@pytest.mark.parametrize(
    ("fault", "status"),
    [("400", 400), ("401", 502), ("403", 502), ("429", 429), ("500", 503), ("malformed", 502)],
)
def test_error_table(proxy, fault, status):
    proxy.fake.fail_next(fault)
    response = proxy.post("v2")
    assert response.status_code == status, response.text
    assert response.json()["message"]
    if status in (429, 503):
        assert int(response.headers["retry-after"]) >= 1


def test_every_call_that_reached_the_provider_leaves_a_priced_spend_row(proxy):
    response = proxy.post("v2")
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]

    def row():
        rows = httpx.get(proxy.url + "/spend/logs", headers=HEADERS, params={"model": "contract"}).json()
        return next((r for r in rows if r["request_id"] == request_id), None)

    found = wait_until(row)
    provider = REGISTRY[proxy.case.model.split("/")[0]].name
    assert found["provider"] == provider and found["status"] == 200
    assert float(found["search_units"]) > 0 or (found["total_tokens"] or 0) > 0
    if proxy.case.priced:
        assert float(found["cost"]) > 0
        assert float(response.headers["x-response-cost"]) == pytest.approx(float(found["cost"]))
