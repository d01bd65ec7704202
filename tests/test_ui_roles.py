"""The admin UI signed in with an admin key, over HTTP on SQLite and PostgreSQL: a proxy_admin's key gets
every page and form (the audit log names the key), a proxy_admin_viewer's the pages only (forms hidden, a
POST refused with 403); other keys cannot sign in; the session ends once the key is blocked, deleted,
rotated or its user demoted."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.serving import answered

PAGES = ["/ui", "/ui/keys", "/ui/teams", "/ui/users", "/ui/customers", "/ui/tags", "/ui/models", "/ui/logs",
         "/ui/reports", "/ui/audit"]


def user_key(admin_api: httpx.Client, user_id: str, role: str, alias: str | None = None) -> dict:
    return answered(admin_api.post("/user/new", json={"user_id": user_id, "user_role": role, "key_alias": alias}))


@contextmanager
def signed_in(server: str, key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as client:
        answer = client.post("/ui/login", data={"master_key": key})
        assert answer.status_code == 303 and answer.headers["location"] == "/ui", answer.text
        cookie = answer.headers["set-cookie"]
        assert key not in cookie and "httponly" in cookie.lower()
        yield client


def csrf_of(client: httpx.Client, path: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(path).text)
    assert match
    return match.group(1)


def test_an_admin_key_uses_every_page_and_form_and_the_audit_log_names_it(admin_server, admin_api):
    made = user_key(admin_api, "ui-ada", "proxy_admin", alias="ui-ada-key")
    with signed_in(admin_server, made["key"]) as client:
        for path in PAGES:
            page = client.get(path)
            assert page.status_code == 200 and 'class="read-only"' not in page.text, path
        assert "Signed in with the key ui-ada-key (ui)" in client.get("/ui").text
        created = client.post("/ui/keys/new", data={"key_alias": "from-ui-ada", "csrf": csrf_of(client, "/ui/keys")})
        assert created.status_code == 200 and re.search(r'id="new-key">sk-', created.text)
    trail = answered(admin_api.get("/audit/logs", params={"changed_by": "ui-ada-key (ui)"}))["audit_logs"]
    assert [(e["action"], e["updated_values"]["key_alias"]) for e in trail] == [("created", "from-ui-ada")]


def test_a_viewer_key_sees_every_page_but_no_form_and_a_post_is_refused(admin_server, admin_api):
    made = user_key(admin_api, "ui-vic", "proxy_admin_viewer")
    with signed_in(admin_server, made["key"]) as client:
        for path in PAGES:
            page = client.get(path)
            assert page.status_code == 200 and '<body class="read-only">' in page.text, path
        token = csrf_of(client, "/ui/keys")
        refused = client.post("/ui/keys/new", data={"key_alias": "from-vic", "csrf": token})
        assert refused.status_code == 403 and "proxy_admin_viewer" in refused.json()["message"]
        assert client.post("/ui/teams/new", data={"id": "vic-team", "csrf": token}).status_code == 403
        assert client.post(f"/ui/keys/{made['token']}/block", data={"csrf": token}).status_code == 403
        assert client.post("/ui/logout", data={"csrf": token}).status_code == 303  # signing out is not a change
    assert answered(admin_api.get("/key/list", params={"key_alias": "from-vic"}))["total_count"] == 0


@pytest.mark.parametrize("role", ["internal_user", "internal_user_viewer"])
def test_other_keys_and_replaced_secrets_cannot_sign_in(admin_server, admin_api, role):
    made = user_key(admin_api, f"ui-{role}", role)
    refused = httpx.post(f"{admin_server}/ui/login", data={"master_key": made["key"]})
    assert refused.status_code == 401 and f"role is &#39;{role}&#39;" in refused.text
    assert "set-cookie" not in refused.headers
    admin = user_key(admin_api, f"ui-grace-{role}", "proxy_admin")
    answered(admin_api.post("/key/regenerate", json={"key": admin["key"], "grace_period": "1h"}))
    old = httpx.post(f"{admin_server}/ui/login", data={"master_key": admin["key"]})
    assert old.status_code == 401 and "not the master key or an admin key" in old.text


ENDINGS = {
    "blocked": lambda api, made: api.post("/key/block", json={"key": made["key"]}),
    "deleted": lambda api, made: api.post("/key/delete", json={"keys": [made["key"]]}),
    "rotated": lambda api, made: api.post("/key/regenerate", json={"key": made["key"], "grace_period": "1h"}),
    "demoted": lambda api, made: api.post("/user/update", json={"user_id": made["user_id"],
                                                                "user_role": "internal_user"}),
    "team blocked": lambda api, made: api.post("/team/block", json={"team_id": "ui-end-team"}),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_the_session_ends_when_its_key_stops_being_an_admin_key(admin_server, admin_api, ending):
    if ending == "team blocked":
        admin_api.post("/team/new", json={"team_id": "ui-end-team"})
    made = user_key(admin_api, f"ui-end-{ending}", "proxy_admin")
    if ending == "team blocked":
        answered(admin_api.post("/key/update", json={"key": made["key"], "team_id": "ui-end-team"}))
    with signed_in(admin_server, made["key"]) as client:
        assert client.get("/ui/keys").status_code == 200
        answered(ENDINGS[ending](admin_api, made))
        over = client.get("/ui/keys")
        assert over.status_code == 303 and over.headers["location"] == "/ui/login"
