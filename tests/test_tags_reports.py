"""Tags (from body, header, key, team and deployment to the spend row, tag budgets, LiteLLM's /tag/* shapes) and
spend reports over the rollups (/spend/report, /global/spend/report, /spend/keys, /spend/users, /spend/tags),
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.serving import answered, wait_until

PAID = "rerank-english-v3.0"  # $0.002 a call


def rerank(url: str, key: str, model: str = "local-bm25", headers: dict | None = None, **body) -> httpx.Response:
    return httpx.post(f"{url}/v2/rerank", headers={"authorization": f"Bearer {key}", **(headers or {})},
                      json={"model": model, "query": CAPITAL_QUERY, "documents": CAPITALS, **body}, timeout=30)


def logged(admin_api, request_id: str) -> dict:
    def find():
        rows = answered(admin_api.get("/spend/logs", params={"page_size": 1000}))
        return next((r for r in rows if r["request_id"] == request_id), None)
    return wait_until(find)


def test_tag_crud_has_litellm_shapes(admin_api):
    created = answered(admin_api.post("/tag/new", json={"name": "crud-tag", "description": "chargeback",
                                                        "max_budget": 5, "budget_duration": "30d", "rpm_limit": 9}))
    assert created["message"] == "Tag crud-tag created successfully"
    tag = created["tag"]
    assert tag["name"] == "crud-tag" and tag["description"] == "chargeback" and tag["spend"] == 0
    assert tag["litellm_budget_table"]["max_budget"] == 5 and tag["litellm_budget_table"]["rpm_limit"] == 9
    info = answered(admin_api.post("/tag/info", json={"names": ["crud-tag"]}))
    assert set(info) == {"crud-tag"} and info["crud-tag"]["remaining_budget"] == 5
    assert admin_api.post("/tag/info", json={"names": ["nope"]}).status_code == 404
    updated = answered(admin_api.post("/tag/update", json={"name": "crud-tag", "max_budget": 6}))
    assert updated["tag"]["max_budget"] == 6 and updated["tag"]["description"] == "chargeback"
    assert "crud-tag" in [t["name"] for t in answered(admin_api.get("/tag/list"))]
    deleted = answered(admin_api.post("/tag/delete", json={"name": "crud-tag"}))
    assert deleted == {"message": "Tag crud-tag deleted successfully"}
    assert admin_api.post("/tag/delete", json={"name": "crud-tag"}).status_code == 404
    assert admin_api.post("/tag/new", json={"name": ""}).status_code == 422
    actions = [e["action"] for e in answered(admin_api.get("/audit/logs", params={"table_name": "tags"}))["audit_logs"]]
    assert actions[:3] == ["deleted", "updated", "created"]


def test_tags_flow_from_body_header_key_team_and_deployment_to_the_spend_row_and_spend_tags(admin_server, admin_api):
    answered(admin_api.post("/team/new", json={"team_id": "tagged-team", "tags": ["t-tag"]}))
    key = answered(admin_api.post("/key/generate", json={"team_id": "tagged-team", "tags": ["k-tag"],
                                               "metadata": {"tags": ["m-tag"]}}))["key"]
    answer = rerank(admin_server, key, "tagged-bm25", headers={"x-litellm-tags": "h-tag, b-tag"},
                    metadata={"tags": ["b-tag"]})
    assert answer.status_code == 200, answer.text
    row = logged(admin_api, answer.headers["x-request-id"])
    assert row["tags"] == ["b-tag", "h-tag", "k-tag", "m-tag", "t-tag", "d-tag"]
    assert row["team_id"] == "tagged-team" and row["key_id"]
    spend = {t["individual_request_tag"]: t for t in answered(admin_api.get("/spend/tags"))}
    assert all(spend[t]["log_count"] >= 1 for t in ("b-tag", "h-tag", "k-tag", "m-tag", "t-tag", "d-tag"))
    assert rerank(admin_server, key, metadata={"tags": "not-a-list"}).status_code == 400
    many = ",".join(f"t{i}" for i in range(40))
    assert rerank(admin_server, key, headers={"x-litellm-tags": many}).status_code == 400


def test_a_tag_budget_refuses_with_a_429_naming_the_tag_and_its_models_restrict(admin_server, admin_api):
    answered(admin_api.post("/tag/new", json={"name": "budget-tag", "max_budget": 0.002}))
    key = answered(admin_api.post("/key/generate", json={}))["key"]
    assert rerank(admin_server, key, PAID, metadata={"tags": ["budget-tag"]}).status_code == 200
    refused = rerank(admin_server, key, PAID, headers={"x-litellm-tags": "budget-tag"})
    assert refused.status_code == 429 and "tag 'budget-tag'" in refused.json()["message"]
    assert rerank(admin_server, key, PAID).status_code == 200  # untagged calls do not count against it
    wait_until(lambda: answered(admin_api.post("/tag/info", json={"names": ["budget-tag"]}))["budget-tag"]["spend"] > 0)
    answered(admin_api.post("/tag/new", json={"name": "bm25-tag", "models": ["local-bm25"]}))
    assert rerank(admin_server, key, "local-bm25", metadata={"tags": ["bm25-tag"]}).status_code == 200
    refused = rerank(admin_server, key, PAID, metadata={"tags": ["bm25-tag"]})
    assert refused.status_code == 403 and "tag 'bm25-tag'" in refused.json()["message"]


def test_reports_aggregate_by_any_grouping_with_litellms_shapes(admin_server, admin_api):
    answered(admin_api.post("/team/new", json={"team_id": "report-team", "team_alias": "Reports"}))
    answered(admin_api.post("/user/new", json={"user_id": "report-user", "auto_create_key": False}))
    key = answered(admin_api.post("/key/generate", json={"team_id": "report-team", "user_id": "report-user",
                                               "key_alias": "report-key"}))
    ids = [rerank(admin_server, key["key"], PAID, user="report-customer").headers["x-request-id"] for _ in range(3)]
    ids.append(rerank(admin_server, key["key"], "local-bm25", user="report-customer").headers["x-request-id"])
    for request_id in ids:
        logged(admin_api, request_id)
    today = datetime.now(UTC).date().isoformat()

    own = answered(admin_api.get("/spend/report", params={"group_by": "team,model", "team": "report-team",
                                                "start_date": today, "end_date": today}))
    by_model = {r["model"]: r for r in own["rows"]}
    assert by_model[PAID]["requests"] == 3 and by_model[PAID]["spend"] == pytest.approx(0.006)
    assert by_model["local-bm25"]["requests"] == 1 and by_model[PAID]["period"] == today
    assert all(r["team"] == "report-team" for r in own["rows"]) and own["truncated"] is False
    cut = answered(admin_api.get("/spend/report", params={"group_by": "team,model", "team": "report-team",
                                                          "limit": 1}))
    assert len(cut["rows"]) == 1 and cut["truncated"] is True
    too_big = admin_api.get("/global/spend/report", params={"team_id": "report-team", "limit": 1})
    assert too_big.status_code == 400 and "more than 1 rows" in too_big.json()["message"]
    keyed = answered(admin_api.get("/spend/report", params={"group_by": "key", "key": key["key"],
                                                            "granularity": "all"}))
    assert keyed["rows"] == [pytest.approx(keyed["rows"][0])] and keyed["rows"][0]["key_alias"] == "report-key"
    assert keyed["rows"][0]["requests"] == 4 and keyed["rows"][0]["errors"] == 0
    daily = answered(admin_api.get("/spend/report", params={"group_by": "end_user,model", "latency": "true",
                                                            "end_user": "report-customer"}))
    assert sum(r["requests"] for r in daily["rows"]) == 4 and {r["model"] for r in daily["rows"]} == {
        PAID, "local-bm25"}
    mixed = answered(admin_api.get("/spend/report", params={"group_by": "end_user,team,key", "granularity": "hour",
                                                            "end_user": "report-customer"}))
    assert sum(r["requests"] for r in mixed["rows"]) == 4 and {r["team"] for r in mixed["rows"]} == {"report-team"}
    assert all(r["period"].endswith(":00:00+00:00") and r["key_alias"] == "report-key" for r in mixed["rows"])
    assert "latency_p50_ms" not in mixed["rows"][0]  # percentiles only on request
    assert answered(admin_api.get("/spend/report", params={"group_by": "end_user,tag",
                                                           "end_user": "report-customer"}))["rows"] == []  # no tags
    assert all(0 < r["latency_p50_ms"] <= r["latency_p99_ms"] for r in daily["rows"])
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    assert answered(admin_api.get("/spend/report", params={"team": "report-team", "end_date": yesterday}))["rows"] == []
    assert admin_api.get("/spend/report", params={"group_by": "colour"}).status_code == 400
    assert admin_api.get("/spend/report", params={"start_date": "2026-01-01T00:00:00"}).status_code == 400

    teams = answered(admin_api.get("/global/spend/report", params={"start_date": today, "end_date": today,
                                                         "team_id": "report-team"}))
    assert [d["group_by_day"] for d in teams] == [f"{today}T00:00:00+00:00"]
    [team] = teams[0]["teams"]
    assert team["team_name"] == "Reports" and team["total_spend"] == pytest.approx(0.006)
    assert {m["model"] for m in team["metadata"]} == {PAID, "local-bm25"}
    assert all(m["api_key"] == key["token"] for m in team["metadata"])
    customers = answered(admin_api.get("/global/spend/report", params={"group_by": "customer",
                                                             "customer_id": "report-customer"}))
    assert customers[0]["customers"][0]["customer"] == "report-customer"
    by_key = answered(admin_api.get("/global/spend/report", params={"group_by": "api_key", "api_key": key["key"]}))
    assert by_key[0]["api_key"] == key["token"] and by_key[0]["total_cost"] == pytest.approx(0.006)
    assert {m["model"] for m in by_key[0]["model_details"]} == {PAID, "local-bm25"}

    assert key["token"] in [k["token"] for k in answered(admin_api.get("/spend/keys"))]
    users = answered(admin_api.get("/spend/users", params={"user_id": "report-user"}))
    wait_until(lambda: answered(admin_api.get("/spend/users", params={"user_id": "report-user"}))[0]["spend"] > 0)
    assert users[0]["user_id"] == "report-user"


def test_deployment_tags_must_be_a_list_of_strings():
    from proxy.settings import ConfigError, parse_config

    with pytest.raises(ConfigError, match="litellm_params.tags must be a list of strings"):
        parse_config({"model_list": [{"model_name": "m", "litellm_params": {"model": "local/bm25", "tags": "a"}}]},
                     {})


def test_rollups_match_the_spend_rows_and_a_retried_batch_is_not_counted_twice(store, spend_event):
    from decimal import Decimal

    at = datetime(2026, 3, 1, 10, 15, tzinfo=UTC)
    events = [spend_event(f"r{i}", cost="0.5", started_at=at + timedelta(minutes=50 * i), key_id="k1",
                          team_id="t1" if i % 2 else None, end_user="eu", tags=["a", "b"] if i < 2 else None,
                          status=200 if i < 3 else 500, input_tokens=10, total_tokens=12, cost_saved=Decimal("0.1"))
              for i in range(4)]
    assert store.write_batch(events) == 4
    assert store.write_batch(events) == 0  # a retried batch: nothing new, nothing added
    days = store.spend_report(group_by=["team"])
    assert sorted((r["period"], r["team"] or "", r["requests"]) for r in days) == [
        ("2026-03-01", "", 2), ("2026-03-01", "t1", 2)]
    [total] = store.spend_report(group_by=["key"], granularity="all")
    assert (total["requests"], total["errors"], total["spend"], total["input_tokens"], total["total_tokens"],
            total["cost_saved"]) == (4, 1, Decimal(2), 40, 48, Decimal("0.4"))
    tags = {r["tag"]: r["requests"] for r in store.spend_report(group_by=["tag"], granularity="all")}
    assert tags == {"a": 2, "b": 2}
    [end_user] = store.spend_report(group_by=["end_user"], granularity="day", filters={"end_user": "eu"})
    assert end_user["requests"] == 4 and end_user["period"] == "2026-03-01"
    assert store.spend_report(group_by=["model"], start=at + timedelta(days=1)) == []
    assert store.spend_report(group_by=["model"], start=at - timedelta(days=1), end=at - timedelta(hours=11)) == []
    assert store.spend_report(group_by=["model"], start=at + timedelta(hours=5)) == []
    [hour] = store.spend_report(group_by=["model"], start=at + timedelta(hours=2, minutes=35))  # 12:50: its hour
    assert hour["requests"] == 1
