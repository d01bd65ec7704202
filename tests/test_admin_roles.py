"""LiteLLM's roles on the admin API, over HTTP on SQLite and PostgreSQL: a proxy_admin's key calls every
admin route and the audit log names it; a proxy_admin_viewer's key reads and changes nothing (nor reranks);
internal users get a 403 naming their role, except for their own key and user."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from proxy.auth.keys import hash_key
from tests.serving import answered

BODY = {"model": "local-bm25", "query": "capital of the United States",
        "documents": ["Washington is the capital of the United States.", "Paris is in France."]}


def user_key(admin_api: httpx.Client, user_id: str, role: str | None, alias: str | None = None) -> str:
    body: dict[str, Any] = {"user_id": user_id, "key_alias": alias}
    if role is not None:
        body["user_role"] = role
    return answered(admin_api.post("/user/new", json=body))["key"]


def client_of(server: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=server, headers={"authorization": f"Bearer {key}"}, timeout=30)


READS = [("GET", "/key/list", None), ("GET", "/team/list", None), ("GET", "/user/list", None),
         ("GET", "/customer/list", None), ("GET", "/tag/list", None), ("POST", "/tag/info", {"names": []}),
         ("GET", "/spend/logs", None), ("GET", "/spend/report", None), ("GET", "/spend/keys", None),
         ("GET", "/audit/logs", None), ("GET", "/global/spend/report", None)]
WRITES = [("/key/generate", {}), ("/team/new", {}), ("/user/new", {"auto_create_key": False}),
          ("/customer/new", {"user_id": "c-role"}), ("/tag/new", {"name": "t-role"}), ("/config/reload", None)]


def test_a_proxy_admin_key_calls_every_admin_route_and_the_audit_log_names_it(admin_server, admin_api):
    key = user_key(admin_api, "ada", "proxy_admin", alias="ada-admin")
    with client_of(admin_server, key) as ada:
        for method, path, body in READS:
            assert ada.request(method, path, json=body).status_code == 200, path
        made = answered(ada.post("/key/generate", json={"key_alias": "made-by-ada"}))
        answered(ada.post("/key/block", json={"key": made["key"]}))
        answered(ada.post("/team/new", json={"team_id": "ada-team"}))
        answered(ada.post("/user/update", json={"user_id": "ada", "max_budget": 10}))
        assert ada.post("/v2/rerank", json=BODY).status_code == 200
        trail = answered(ada.get("/audit/logs", params={"changed_by": "ada-admin"}))["audit_logs"]
    assert {(e["action"], e["table_name"]) for e in trail} == {
        ("created", "verification_tokens"), ("blocked", "verification_tokens"), ("created", "teams"),
        ("updated", "internal_users")}
    assert key not in str(trail) and hash_key(key) not in str(trail) and made["token"] not in str(trail)
    unnamed = answered(admin_api.post("/user/new", json={"user_id": "bea", "user_role": "proxy_admin"}))
    with client_of(admin_server, unnamed["key"]) as bea:  # no alias: the key_id names it
        answered(bea.post("/team/new", json={"team_id": "bea-team"}))
    assert answered(admin_api.get("/audit/logs", params={"changed_by": unnamed["key_id"]}))["total"] == 1


def test_a_viewer_key_reads_everything_changes_nothing_and_does_not_rerank(admin_server, admin_api):
    key = user_key(admin_api, "vic", "proxy_admin_viewer")
    other = answered(admin_api.post("/key/generate", json={}))
    with client_of(admin_server, key) as vic:
        for method, path, body in READS:
            assert vic.request(method, path, json=body).status_code == 200, path
        assert answered(vic.get("/key/info", params={"key": other["key"]}))["info"]["key_id"] == other["key_id"]
        assert answered(vic.get("/user/info", params={"user_id": "ada"}))["user_id"] == "ada"
        assert vic.get("/model/info").status_code == 200
        for path, body in WRITES:
            refused = vic.post(path, json=body)
            assert refused.status_code == 403, path
            assert "role 'proxy_admin_viewer' may only read" in refused.json()["message"]
        assert vic.post("/key/delete", json={"keys": [other["key"]]}).status_code == 403
        reranked = vic.post("/v2/rerank", json=BODY)
        assert reranked.status_code == 403 and "proxy_admin_viewer" in reranked.json()["message"]
    assert answered(admin_api.get("/key/info", params={"key": other["key"]}))["info"]["blocked"] is False


@pytest.mark.parametrize("role", ["internal_user", "internal_user_viewer", None])
def test_other_keys_get_a_403_naming_their_role_but_read_their_own_key_and_user(admin_server, admin_api, role):
    user_id = f"iu-{role}"
    key = user_key(admin_api, user_id, role)
    other = answered(admin_api.post("/key/generate", json={}))
    named = f"role is '{role}'" if role else "has no role"
    with client_of(admin_server, key) as iu:
        for method, path, body in READS:
            refused = iu.request(method, path, json=body)
            assert refused.status_code == 403 and named in refused.json()["message"], path
        for path, body in WRITES:
            assert iu.post(path, json=body).status_code == 403, path
        assert answered(iu.get("/key/info"))["key"] == hash_key(key)
        assert iu.get("/key/info", params={"key": other["key"]}).status_code == 403
        if role is not None:  # a user that exists reads itself
            assert answered(iu.get("/user/info", params={"user_id": user_id}))["user_id"] == user_id
        assert iu.get("/user/info", params={"user_id": "ada"}).status_code == 403
        assert iu.post("/v2/rerank", json=BODY).status_code == 200


def test_a_demoted_admin_loses_its_rights_at_once(admin_server, admin_api):
    key = user_key(admin_api, "dora", "proxy_admin")
    with client_of(admin_server, key) as dora:
        assert dora.get("/key/list").status_code == 200  # cached with its role
        answered(admin_api.post("/user/update", json={"user_id": "dora", "user_role": "internal_user"}))
        refused = dora.get("/key/list")
        assert refused.status_code == 403 and "'internal_user'" in refused.json()["message"]
        answered(admin_api.post("/user/update", json={"user_id": "dora", "user_role": "proxy_admin"}))
        assert dora.get("/key/list").status_code == 200
        answered(admin_api.post("/user/delete", json={"user_ids": ["dora"]}))
        assert "has no role" in dora.get("/key/list").json()["message"]
