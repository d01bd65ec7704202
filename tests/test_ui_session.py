"""The admin UI's sign-in, over HTTP: cookie flags, CSRF on every form, expiry, forged cookies, no key in logs."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from proxy.ui.session import SESSION_SECONDS, Sessions
from tests.serving import MASTER_KEY, config_for, running_proxy


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("ui-session") / "ui.db"
    with running_proxy(config_for(None, f"sqlite:///{db}")) as server:
        yield server.url


@contextmanager
def signed_in_client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=10) as client:
        answer = client.post("/ui/login", data={"master_key": MASTER_KEY})
        assert answer.status_code == 303 and answer.headers["location"] == "/ui"
        yield client


def csrf_of(client: httpx.Client, path: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(path).text)
    assert match
    return match.group(1)


def test_pages_need_a_session_and_the_cookie_is_httponly_strict_and_secure_over_tls(ui_url) -> None:
    assert httpx.get(ui_url + "/ui/keys").headers["location"] == "/ui/login"
    wrong = httpx.post(ui_url + "/ui/login", data={"master_key": "sk-nope"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    with signed_in_client(ui_url) as client:
        assert client.get("/ui/keys").status_code == 200
    plain = httpx.post(ui_url + "/ui/login", data={"master_key": MASTER_KEY}).headers["set-cookie"].lower()
    assert "httponly" in plain and "samesite=strict" in plain and "secure" not in plain
    assert MASTER_KEY.lower() not in plain
    behind_tls = httpx.post(ui_url + "/ui/login", data={"master_key": MASTER_KEY},
                            headers={"x-forwarded-proto": "https"}).headers["set-cookie"].lower()
    assert "; secure" in behind_tls


def test_every_form_needs_its_csrf_token(ui_url) -> None:
    with signed_in_client(ui_url) as client:
        refused = client.post("/ui/keys/new", data={"key_alias": "no-token"})
        assert refused.status_code == 403 and "did not come from this page" in refused.json()["message"]
        forged = client.post("/ui/keys/new", data={"key_alias": "forged", "csrf": "0" * 32})
        assert forged.status_code == 403
        made = client.post("/ui/keys/new", data={"key_alias": "with-token", "csrf": csrf_of(client, "/ui/keys")})
        assert made.status_code == 200 and re.search(r'id="new-key">sk-', made.text)
        listed = httpx.get(ui_url + "/key/list", params={"return_full_object": "true"},
                           headers={"authorization": f"Bearer {MASTER_KEY}"}).json()["keys"]
        assert [k["key_alias"] for k in listed if k["key_alias"]] == ["with-token"]
        trail = httpx.get(ui_url + "/audit/logs", headers={"authorization": f"Bearer {MASTER_KEY}"}).json()
        assert trail["audit_logs"][0]["changed_by"] == "master_key (ui)"


def test_signing_out_ends_the_session_and_a_forged_cookie_is_refused(ui_url) -> None:
    with signed_in_client(ui_url) as client:
        token = csrf_of(client, "/ui")
        stolen = dict(client.cookies)
        out = client.post("/ui/logout", data={"csrf": token})
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
        assert httpx.get(ui_url + "/ui", cookies=stolen).headers["location"] == "/ui/login"
    value = next(iter(stolen.values()))
    expires, nonce, signature = value.split(".")
    tampered = f"{int(expires) + 3600}.{nonce}.{signature}"
    assert httpx.get(ui_url + "/ui", cookies={"rerank_proxy_ui": tampered}).headers["location"] == "/ui/login"


def test_sessions_expire_and_a_new_master_key_signs_everyone_out() -> None:
    now = [1_000_000.0]
    sessions = Sessions("sk-one", clock=lambda: now[0])
    cookie, session = sessions.issue()
    assert sessions.read(cookie) == session
    assert sessions.check_csrf(session, session.csrf) and not sessions.check_csrf(session, "")
    assert Sessions("sk-two", clock=lambda: now[0]).read(cookie) is None
    now[0] += SESSION_SECONDS
    assert sessions.read(cookie) is None


def test_the_master_key_never_reaches_a_log_line(ui_url, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    httpx.post(ui_url + "/ui/login", data={"master_key": MASTER_KEY})
    httpx.post(ui_url + "/ui/login", data={"master_key": "sk-a-wrong-guess"})
    assert MASTER_KEY not in caplog.text and "sk-a-wrong-guess" not in caplog.text
