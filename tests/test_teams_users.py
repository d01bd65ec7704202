"""Teams, internal users and the audit log through real HTTP, with LiteLLM's request and response shapes,
on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx

from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.serving import answered


def rerank(admin_server: str, key: str, model: str = "local-bm25") -> httpx.Response:
    return httpx.post(f"{admin_server}/v2/rerank", headers={"authorization": f"Bearer {key}"},
                      json={"model": model, "query": CAPITAL_QUERY, "documents": CAPITALS}, timeout=30)


def test_team_lifecycle_has_litellm_shapes(admin_api):
    team = answered(admin_api.post("/team/new", json={
        "team_alias": "search", "models": ["local-bm25"], "max_budget": 10, "budget_duration": "30d",
        "rpm_limit": 100, "metadata": {"cc": "42"}, "members_with_roles": [{"role": "admin", "user_id": "ann"}]}))
    team_id = team["team_id"]
    assert team["team_alias"] == "search" and team["models"] == ["local-bm25"] and team["spend"] == 0
    assert team["max_budget"] == 10 and team["budget_reset_at"] is not None and team["blocked"] is False
    assert team["members_with_roles"] == [{"user_id": "ann", "role": "admin"}]

    info = answered(admin_api.get("/team/info", params={"team_id": team_id}))
    assert set(info) == {"team_id", "team_info", "keys", "team_memberships"}
    assert info["team_info"]["remaining_budget"] == 10 and info["keys"] == []
    assert [(m["user_id"], m["role"]) for m in info["team_memberships"]] == [("ann", "admin")]

    updated = answered(admin_api.post("/team/update", json={"team_id": team_id, "rpm_limit": 5,
                                                            "team_alias": "search2"}))
    assert updated["team_id"] == team_id and updated["data"]["rpm_limit"] == 5
    assert updated["data"]["team_alias"] == "search2" and updated["data"]["max_budget"] == 10

    assert answered(admin_api.post("/team/block", json={"team_id": team_id}))["blocked"] is True
    assert answered(admin_api.post("/team/unblock", json={"team_id": team_id}))["blocked"] is False
    assert team_id in [t["team_id"] for t in answered(admin_api.get("/team/list"))]
    assert [t["team_id"] for t in answered(admin_api.get("/team/list", params={"user_id": "ann"}))] == [team_id]

    assert answered(admin_api.post("/team/delete", json={"team_ids": [team_id]})) == {"deleted_teams": [team_id]}
    assert admin_api.get("/team/info", params={"team_id": team_id}).status_code == 404
    assert admin_api.post("/team/delete", json={"team_ids": [team_id]}).status_code == 404


def test_team_members_are_added_and_removed(admin_api):
    team_id = answered(admin_api.post("/team/new", json={"team_id": "members-team"}))["team_id"]
    added = answered(admin_api.post("/team/member_add", json={"team_id": team_id,
                                                  "member": [{"role": "user", "user_id": "bo"},
                                                             {"role": "admin", "user_id": "cy"}]}))
    assert sorted(m["user_id"] for m in added["members_with_roles"]) == ["bo", "cy"]
    assert sorted(u["user_id"] for u in added["updated_users"]) == ["bo", "cy"]  # created on first sight
    assert {(m["user_id"], m["role"]) for m in added["updated_team_memberships"]} == {("bo", "user"),
                                                                                      ("cy", "admin")}
    after = answered(admin_api.post("/team/member_delete", json={"team_id": team_id, "user_id": "bo"}))
    assert [m["user_id"] for m in after["members_with_roles"]] == ["cy"]
    assert admin_api.post("/team/member_delete", json={"team_id": team_id, "user_id": "bo"}).status_code == 404
    assert admin_api.post("/team/member_add", json={"team_id": "nope", "member": {"user_id": "x"}}).status_code == 404


def test_user_lifecycle_has_litellm_shapes(admin_api, admin_server):
    answered(admin_api.post("/team/new", json={"team_id": "user-team"}))
    user = answered(admin_api.post("/user/new", json={"user_id": "dee", "user_email": "dee@example.com",
                                                      "max_budget": 3, "teams": ["user-team"], "key_alias": "dee-key"}))
    assert user["user_id"] == "dee" and user["user_email"] == "dee@example.com" and user["max_budget"] == 3
    assert user["teams"] == ["user-team"] and user["key"].startswith("sk-") and user["key_alias"] == "dee-key"
    assert rerank(admin_server, user["key"]).status_code == 200

    info = answered(admin_api.get("/user/info", params={"user_id": "dee"}))
    assert info["user_id"] == "dee" and info["user_info"]["user_email"] == "dee@example.com"
    assert [k["key_alias"] for k in info["keys"]] == ["dee-key"] and info["keys"][0]["user_id"] == "dee"
    assert [t["team_id"] for t in info["teams"]] == ["user-team"]

    listed = answered(admin_api.get("/user/list", params={"user_ids": "dee", "page_size": 10}))
    assert listed["total"] == 1 and listed["users"][0]["teams"] == ["user-team"]
    assert set(listed) == {"users", "total", "page", "page_size", "total_pages"}

    updated = answered(admin_api.post("/user/update", json={"user_id": "dee", "max_budget": 5}))
    assert updated["data"]["max_budget"] == 5
    assert admin_api.post("/user/update", json={"user_id": "ghost", "max_budget": 5}).status_code == 404
    assert admin_api.post("/user/new", json={"user_id": "dee"}).status_code == 400
    assert admin_api.post("/user/new", json={"user_role": "admin"}).status_code == 422  # not a LiteLLM role

    no_key = answered(admin_api.post("/user/new", json={"user_id": "eve", "auto_create_key": False}))
    assert no_key["key"] is None
    assert answered(admin_api.post("/user/delete", json={"user_ids": ["eve", "ghost"]})) == {"deleted_users": ["eve"]}
    assert admin_api.get("/user/info", params={"user_id": "eve"}).status_code == 404


def test_a_teams_models_restrict_its_keys_and_a_blocked_team_blocks_them(admin_api, admin_server):
    answered(admin_api.post("/team/new", json={"team_id": "bm25-only", "models": ["local-bm25"]}))
    key = answered(admin_api.post("/key/generate", json={"team_id": "bm25-only"}))
    assert key["team_id"] == "bm25-only"
    assert rerank(admin_server, key["key"]).status_code == 200
    refused = rerank(admin_server, key["key"], "rerank-english-v3.0")
    assert refused.status_code == 403 and "team 'bm25-only'" in refused.json()["message"]
    answered(admin_api.post("/team/block", json={"team_id": "bm25-only"}))
    blocked = rerank(admin_server, key["key"])
    assert blocked.status_code == 403 and "team 'bm25-only' is blocked" in blocked.json()["message"]
    answered(admin_api.post("/team/unblock", json={"team_id": "bm25-only"}))
    assert rerank(admin_server, key["key"]).status_code == 200
    assert [k["team_id"] for k in answered(admin_api.get("/key/list", params={"team_id": "bm25-only",
                                                                  "return_full_object": True}))["keys"]] == [
        "bm25-only"]


def test_a_key_cannot_join_a_team_that_does_not_exist(admin_api):
    refused = admin_api.post("/key/generate", json={"team_id": "no-such-team"})
    assert refused.status_code == 400 and "team_id" in refused.json()["message"]
    key = answered(admin_api.post("/key/generate", json={}))
    assert admin_api.post("/key/update", json={"key": key["key"], "team_id": "no-such-team"}).status_code == 400


def test_every_admin_change_is_audited_without_secrets(admin_api):
    team_id = answered(admin_api.post("/team/new", json={"team_alias": "audited", "max_budget": 1}))["team_id"]
    answered(admin_api.post("/team/update", json={"team_id": team_id, "max_budget": 2}))
    logs = answered(admin_api.get("/audit/logs", params={"table_name": "teams", "object_id": team_id}))
    assert logs["total"] == 2 and [e["action"] for e in logs["audit_logs"]] == ["updated", "created"]
    update = logs["audit_logs"][0]
    assert update["changed_by"] == "master_key"
    assert update["before_value"]["max_budget"] == 1 and update["updated_values"]["max_budget"] == 2

    key = answered(admin_api.post("/key/generate", json={"key_alias": "audited-key"}))
    answered(admin_api.post("/key/update", json={"key": key["key"], "rpm_limit": 7}))
    answered(admin_api.post("/key/block", json={"key": key["key"]}))
    answered(admin_api.post("/key/delete", json={"keys": [key["key"]]}))
    answered(admin_api.post("/customer/new", json={"user_id": "audited-customer"}))
    entries = answered(admin_api.get("/audit/logs", params={"object_id": key["key_id"]}))["audit_logs"]
    assert [e["action"] for e in entries] == ["deleted", "blocked", "updated", "created"]
    assert all(e["table_name"] == "verification_tokens" for e in entries)
    text = str(entries)
    assert key["key"] not in text and key["token"] not in text
    assert answered(admin_api.get("/audit/logs", params={"table_name": "end_users", "action": "created"}))["total"] >= 1
    assert admin_api.get("/audit/logs", params={"start_date": "2020-01-01T00:00:00"}).status_code == 400


def test_a_field_we_do_not_implement_is_refused_unless_it_asks_for_nothing(admin_api):
    # LiteLLM's scripts send defaults for fields we lack: those pass; a value that would change something is a 400
    quiet = {"aliases": {}, "permissions": {}, "soft_budget": None, "send_invite_email": False, "guardrails": []}
    made = admin_api.post("/key/generate", json={"key_alias": "quiet", **quiet})
    assert made.status_code == 200, made.text
    for route, body in [("/key/generate", {"soft_budget": 5}), ("/team/new", {"organization_id": "org-1"}),
                        ("/user/new", {"send_invite_email": True, "auto_create_key": False})]:
        answer = admin_api.post(route, json=body)
        assert answer.status_code == 400, (route, answer.text)
        assert next(iter(body)) in answer.json()["message"]
