"""The admin UI's audit and reports pages over HTTP against a real server: filters, paging, the diff, the report
table and its CSV, and API refusals shown on the page (never a 500)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

import httpx
import pytest

from proxy.ui import reports_page
from proxy.ui.audit_page import diff
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.serving import MASTER_KEY, admin, answered, config_for, running_proxy, wait_until

PRICED = {"model_name": "priced-bm25", "litellm_params": {"model": "local/bm25", "input_cost_per_query": 0.25}}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, httpx.Client]]:
    db = tmp_path_factory.mktemp("ui-pages") / "ui.db"
    with running_proxy(config_for(None, f"sqlite:///{db}", model_list=[PRICED])) as server, \
            httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/ui/login", data={"master_key": MASTER_KEY}).status_code == 303
        yield server.url, client


def alerts(html: str) -> list[str]:
    return re.findall(r'role="alert">([^<]*)<', html)


def test_the_audit_page_filters_pages_and_shows_each_change_as_a_diff_without_secrets(served) -> None:
    url, client = served
    with admin(url) as api:
        made = answered(api.post("/key/generate", json={"key_alias": "audited-key", "max_budget": 1.5}))
        answered(api.post("/key/update", json={"key": made["key"], "max_budget": 2.5, "tags": ["blue"]}))
        for n in range(55):
            answered(api.post("/tag/new", json={"name": f"tag-{n}"}))
    updated = client.get("/ui/audit", params={"table": "verification_tokens", "action": "updated"}).text
    assert "1 change(s)" in updated and made["key_id"] in updated
    assert re.search(r"<th scope=\"row\">max_budget</th>\s*<td><del>1.5</del></td>\s*<td><ins>2.5</ins></td>", updated)
    assert re.search(r"<th scope=\"row\">tags</th>\s*<td></td>\s*<td><ins>\[&#34;blue&#34;\]</ins></td>", updated)
    everything = client.get("/ui/audit").text
    assert made["key"] not in everything and made["token"] not in everything
    assert "57 change(s)" in everything and "Page 1 of 2" in everything
    second = client.get("/ui/audit", params={"p": 2}).text
    assert "audited-key" in second and "tag-54" not in second  # newest first: the key came before the tags
    nobody = client.get("/ui/audit", params={"who": "someone else", "since": "2000-01-01", "until": "2000-01-02"})
    assert nobody.status_code == 200 and "No changes match." in nobody.text
    refused = client.get("/ui/audit", params={"since": "yesterday"})
    assert refused.status_code == 200 and alerts(refused.text) == ["dates are YYYY-MM-DD, got &#39;yesterday&#39;"]


def test_a_diff_lists_only_the_fields_that_changed() -> None:
    assert diff(None, {"key_alias": "a", "models": [], "token": "secret", "spend": 0}) == [
        {"field": "key_alias", "before": None, "after": "a"}, {"field": "spend", "before": None, "after": "0"}]
    assert diff({"rpm_limit": 5, "metadata": {"b": 1}}, {"rpm_limit": 5, "metadata": {"b": 2}}) == [
        {"field": "metadata", "before": '{"b": 1}', "after": '{"b": 2}'}]
    assert diff({"blocked": False}, None) == [{"field": "blocked", "before": "False", "after": None}]


def test_the_reports_page_offers_what_spend_report_takes() -> None:
    assert reports_page.DIMENSIONS == ["key", "team", "user", "end_user", "model", "deployment", "provider", "tag"]
    assert "day" in reports_page.GRANULARITIES and "all" in reports_page.GRANULARITIES


def test_the_reports_page_shows_a_keys_spend_as_table_chart_and_csv(served) -> None:
    url, client = served
    with admin(url) as api:
        key = answered(api.post("/key/generate", json={"key_alias": "=HYPERLINK(1)"}))["key"]
    for _ in range(3):
        answered(httpx.post(url + "/v1/rerank", headers={"authorization": f"Bearer {key}"}, timeout=10,
                            json={"model": "priced-bm25", "query": CAPITAL_QUERY, "documents": CAPITALS}))
    query = {"granularity": "all", "group_by": ["key", "model"]}

    def reported() -> str | None:
        html = client.get("/ui/reports", params=query).text
        return html if "$0.750000" in html else None

    html = wait_until(reported)
    assert re.search(r'data-group="=HYPERLINK\(1\) · priced-bm25">\s*<td>=HYPERLINK\(1\) · priced-bm25</td>\s*'
                     r'<td class="num">3</td>', html)
    assert html.count('<svg class="chart"') == 2 and 'class="bar series-0"' in html
    assert 'href="/ui/reports.csv?granularity=all&amp;group_by=key&amp;group_by=model"' in html
    daily = client.get("/ui/reports", params={**query, "granularity": "day", "model": "priced-bm25"}).text
    assert "Spend (USD) per day" in daily and daily.count("<tr data-group=") == 1
    exported = client.get("/ui/reports.csv", params=query)
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.headers["content-disposition"].startswith('attachment; filename="spend-')
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    ours = next(r for r in rows if r["model"] == "priced-bm25")
    assert ours["key_alias"] == "'=HYPERLINK(1)" and float(ours["spend"]) == 0.75 and ours["requests"] == "3"


def test_a_report_the_api_refuses_is_explained_on_the_page_and_the_csv_answers_400(served) -> None:
    _, client = served
    mixed = {"granularity": "all", "group_by": ["end_user", "key"]}
    page = client.get("/ui/reports", params=mixed)
    assert page.status_code == 200 and alerts(page.text) == ["end_user combines only with model, and tag with "
                                                             "nothing else"]
    assert client.get("/ui/reports.csv", params=mixed).status_code == 400
    unknown = client.get("/ui/reports", params={"granularity": "all", "key": "no-such-alias"})
    assert alerts(unknown.text) == ["api_key: no such key"]
    bad_date = client.get("/ui/reports", params={"granularity": "all", "start_date": "31/01/2026"})
    assert "start_date must be a date" in alerts(bad_date.text)[0]
