"""The admin UI's audit and reports pages over HTTP against a real server: filters, paging, the diff, the report
table and its CSV, and API refusals shown on the page (never a 500)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from html import unescape

import httpx
import pytest

from proxy.ui import reports_page
from proxy.ui.audit_page import diff
from tests.conftest import CAPITAL_QUERY, CAPITALS, scratch_database
from tests.serving import MASTER_KEY, admin, answered, config_for, running_proxy, wait_until

PRICED = {"model_name": "priced-bm25", "litellm_params": {"model": "local/bm25", "input_cost_per_query": 0.25}}


@pytest.fixture(scope="module")
def served(db_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, httpx.Client]]:
    """A server on its own database (SQLite, and PostgreSQL when TEST_POSTGRES_URL is set), signed in."""
    with scratch_database(db_backend, tmp_path_factory.mktemp("ui-pages")) as db_url, \
            running_proxy(config_for(None, db_url, model_list=[PRICED])) as server, \
            httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/ui/login", data={"master_key": MASTER_KEY}).status_code == 303
        yield server.url, client


def alerts(html: str) -> list[str]:
    return [unescape(text) for text in re.findall(r'role="alert">([^<]*)<', html)]


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
    assert refused.status_code == 200 and alerts(refused.text) == ["dates are YYYY-MM-DD, got 'yesterday'"]


def test_a_diff_lists_only_the_fields_that_changed() -> None:
    assert diff(None, {"key_alias": "a", "models": [], "token": "secret", "spend": 0}) == [
        {"field": "key_alias", "before": None, "after": "a"}, {"field": "spend", "before": None, "after": "0"}]
    assert diff({"rpm_limit": 5, "metadata": {"b": 1}}, {"rpm_limit": 5, "metadata": {"b": 2}}) == [
        {"field": "metadata", "before": '{"b": 1}', "after": '{"b": 2}'}]
    assert diff({"blocked": False}, None) == [{"field": "blocked", "before": "False", "after": None}]


def test_the_reports_page_offers_what_spend_report_takes() -> None:
    assert reports_page.DIMENSIONS == ["key", "team", "user", "end_user", "model", "deployment", "provider", "tag"]
    assert reports_page.GRANULARITIES == ["hour", "day", "all"]


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
    hourly = client.get("/ui/reports", params={**query, "granularity": "hour", "model": "priced-bm25"}).text
    assert "Spend (USD) per hour" in hourly and re.search(r"<td>\d{4}-\d\d-\d\d \d\d:00</td>", hourly)
    assert "latency p99 (ms)" in hourly and not alerts(hourly)
    exported = client.get("/ui/reports.csv", params=query)
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.headers["content-disposition"].startswith('attachment; filename="spend-')
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    ours = next(r for r in rows if r["model"] == "priced-bm25")
    assert ours["key_alias"] == "'=HYPERLINK(1)" and float(ours["spend"]) == 0.75 and ours["requests"] == "3"
    assert float(ours["latency_p50_ms"]) >= 0 and "latency_p99_ms" in ours


def test_a_report_the_api_refuses_is_explained_on_the_page_and_the_csv_answers_400(served) -> None:
    _, client = served
    undated = {"granularity": "all", "group_by": ["end_user", "key"], "end_date": "soon"}
    page = client.get("/ui/reports", params=undated)
    assert page.status_code == 200 and alerts(page.text) == ["end_date must be a date (YYYY-MM-DD) or an ISO 8601 "
                                                             "datetime"]
    assert client.get("/ui/reports.csv", params=undated).status_code == 400
    unknown = client.get("/ui/reports", params={"granularity": "all", "key": "no-such-alias"})
    assert alerts(unknown.text) == ["api_key: no such key"]
    bad_date = client.get("/ui/reports", params={"granularity": "all", "start_date": "31/01/2026"})
    assert "start_date must be a date" in alerts(bad_date.text)[0]


def csrf_of(client: httpx.Client, path: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(path).text)
    assert match
    return match.group(1)


def post(client: httpx.Client, path: str, **fields: str) -> httpx.Response:
    """A form post as the browser sends it, following the redirect back to the page."""
    page_path = "/".join(path.split("/")[:3])
    return client.post(path, data={"csrf": csrf_of(client, page_path), **fields}, follow_redirects=True)


def test_the_key_forms_set_litellms_common_fields_and_show_refusals_on_the_page(served) -> None:
    url, client = served
    assert "created" in post(client, "/ui/teams/new", team_id="search", team_alias="Search").text
    made = post(client, "/ui/keys/new", key_alias="full-key", team_id="search", user_id="ann", models="priced-bm25",
                tags="blue, green", max_budget="12.5", budget_duration="30d", rpm_limit="60", tpm_limit="6000",
                max_parallel_requests="3", duration="90d", metadata='{"owner": "search", "tier": 2}')
    assert made.status_code == 200
    secret = re.search(r'id="new-key">(sk-[^<]+)<', made.text).group(1)
    with admin(url) as api:
        info = answered(api.get("/key/info", params={"key": secret}))["info"]
    assert {k: info[k] for k in ("key_alias", "team_id", "user_id", "models", "tags", "max_budget", "budget_duration",
                                 "rpm_limit", "tpm_limit", "max_parallel_requests", "metadata")} == {
        "key_alias": "full-key", "team_id": "search", "user_id": "ann", "models": ["priced-bm25"],
        "tags": ["blue", "green"], "max_budget": 12.5, "budget_duration": "30d", "rpm_limit": 60, "tpm_limit": 6000,
        "max_parallel_requests": 3, "metadata": {"owner": "search", "tier": 2}}
    assert info["expires"] is not None
    token = info["token"]
    edited = post(client, f"/ui/keys/{token}/update", tags="red", max_parallel_requests="5", metadata='{"owner": "x"}',
                  expires="2031-01-02T03:04")
    assert edited.status_code == 200 and "key updated" in edited.text
    with admin(url) as api:
        info = answered(api.get("/key/info", params={"key": secret}))["info"]
    assert info["tags"] == ["red"] and info["max_parallel_requests"] == 5 and info["metadata"] == {"owner": "x"}
    assert info["expires"].startswith("2031-01-02T03:04") and info["max_budget"] == 12.5  # empty: unchanged
    form = client.get("/ui/keys").text.split(f'action="/ui/keys/{token}/update"')[1].split("</form>")[0]
    shown = {name: unescape(value) for name, value in re.findall(r'name="was\.([a-z_]+)" value="([^"]*)"', form)}
    assert shown["budget_duration"] == "30d" and shown["expires"] == "2031-01-02T03:04"
    resent = {**shown, **{f"was.{n}": v for n, v in shown.items()}, "rpm_limit": "61"}  # as the browser sends it
    post(client, f"/ui/keys/{token}/update", **resent)
    with admin(url) as api:
        again = answered(api.get("/key/info", params={"key": secret}))["info"]
    assert again["rpm_limit"] == 61 and again["budget_reset_at"] == info["budget_reset_at"]  # period not restarted
    for fields, said in (({"metadata": "{not json"}, "Metadata (a JSON object): not JSON"),
                         ({"metadata": "[1, 2]"}, "Metadata (a JSON object): must be a JSON object"),
                         ({"rpm_limit": "lots"}, "Requests per minute: 'lots' is not a whole number"),
                         ({"team_id": "nope"}, "team_id: team 'nope' does not exist"),
                         ({"budget_duration": "forever"}, "budget_duration"),
                         ({"expires": "2001-01-01T00:00"}, "expires is in the past")):
        refused = post(client, "/ui/keys/new", key_alias="refused", **fields)
        assert refused.status_code == 200 and said in " ".join(alerts(refused.text)), (fields, alerts(refused.text))


def test_team_user_end_user_and_tag_forms_cover_members_roles_budgets_blocking_and_models(served) -> None:
    url, client = served
    post(client, "/ui/teams/new", team_id="ranking", models="priced-bm25", max_budget="50", tpm_limit="1000",
         max_parallel_requests="4", members_with_roles="bo, cy:admin")
    teams_page = client.get("/ui/teams").text
    assert re.search(r"<td>bo, cy \(admin\)</td>", teams_page) and "4 parallel" in teams_page
    post(client, "/ui/teams/ranking/update", members_with_roles="cy, dee:admin", rpm_limit="30")
    with admin(url) as api:
        team = answered(api.get("/team/info", params={"team_id": "ranking"}))["team_info"]
    assert sorted((m["user_id"], m["role"]) for m in team["members_with_roles"]) == [("cy", "user"), ("dee", "admin")]
    assert team["rpm_limit"] == 30 and team["max_budget"] == 50

    made = post(client, "/ui/users/new", user_id="eve", user_role="internal_user", teams="ranking", max_budget="9",
                auto_create_key="on")
    assert re.search(r'id="new-key">sk-', made.text)
    post(client, "/ui/users/eve/update", teams="search", tpm_limit="77")
    with admin(url) as api:
        user = answered(api.get("/user/info", params={"user_id": "eve"}))
    assert [t["team_id"] for t in user["teams"]] == ["search"] and user["user_info"]["tpm_limit"] == 77
    assert user["user_info"]["user_role"] == "internal_user" and len(user["keys"]) == 1
    assert "Role: " not in alerts(post(client, "/ui/users/new", user_id="fay").text)
    refused = post(client, "/ui/users/new", user_id="gus", user_role="admin")  # not one of LiteLLM's roles
    assert alerts(refused.text) == ["user_role: Input should be 'proxy_admin', 'proxy_admin_viewer', "
                                    "'internal_user' or 'internal_user_viewer'"]

    post(client, "/ui/customers/new", user_id="shop-1", max_budget="3", blocked="on")
    post(client, "/ui/customers/shop-1/update", max_budget="4", blocked="")
    post(client, "/ui/tags/new", name="nightly", description="batch jobs", models="priced-bm25", max_budget="2")
    post(client, "/ui/tags/nightly/update", rpm_limit="10")
    with admin(url) as api:
        customer = answered(api.get("/customer/info", params={"end_user_id": "shop-1"}))
        tag = answered(api.post("/tag/info", json={"names": ["nightly"]}))["nightly"]
    assert customer["max_budget"] == 4 and customer["blocked"] is False
    assert tag["models"] == ["priced-bm25"] and tag["max_budget"] == 2 and tag["rpm_limit"] == 10
    assert "deleted" in post(client, "/ui/tags/nightly/delete").text
    assert "nightly" not in client.get("/ui/tags").text
    trail = client.get("/ui/audit", params={"table": "teams", "object_id": "ranking"}).text
    assert "member_added" in trail and "member_deleted" in trail
    for path, fields in (("/ui/teams/new", {"team_id": "ranking"}), ("/ui/teams/nope/update", {"rpm_limit": "1"}),
                         ("/ui/customers/new", {"user_id": ""}), ("/ui/tags/nope/delete", {}),
                         ("/ui/users/eve/update", {"teams": "no-such-team"}),
                         ("/ui/tags/new", {"name": "t", "max_budget": "-1"})):
        answer = post(client, path, **fields)
        assert answer.status_code == 200 and alerts(answer.text), (path, fields)
