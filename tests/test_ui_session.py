"""The admin UI's sign-in, over HTTP: cookie flags, CSRF on every form, expiry, forged cookies, no key in logs,
failed sign-ins limited per address and in total."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from proxy.ui.session import SESSION_SECONDS, Sessions
from proxy.ui.sign_in_limits import PER_ADDRESS, WINDOW_SECONDS, Attempt, SignInLimits
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
    expires, nonce, key_id, binding, signature = value.split(".")
    assert key_id == binding == ""  # a master-key session names no key
    for tampered in (f"{int(expires) + 3600}.{nonce}.{key_id}.{binding}.{signature}",
                     f"{expires}.{nonce}.{'0' * 32}.{'0' * 32}.{signature}"):  # posing as a key's session
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


async def test_failed_sign_ins_are_limited_per_address_and_in_total_in_bounded_memory() -> None:
    now = [1_000_000.0]
    limits = SignInLimits(lambda: now[0], window=600, per_address=3, total=5, max_addresses=4)

    async def fail(address: str) -> None:
        attempt = await limits.attempt(address)
        assert isinstance(attempt, Attempt) and not attempt.shared
        limits.failed(attempt)

    for _ in range(3):
        await fail("10.0.0.1")
        now[0] += 10
    assert await limits.attempt("10.0.0.1") == 600 - 30  # until its first failure leaves the window
    now[0] += 570
    await fail("10.0.0.1")  # the first left the window
    await fail("10.0.0.2")  # another address is not limited by that one
    await fail("10.0.0.3")
    assert await limits.attempt("10.0.0.9") == 10  # five attempts from anywhere in the window: everyone waits
    now[0] += 10
    pending = await limits.attempt("10.0.0.4")  # counted from the start: a concurrent guess waits for it
    assert isinstance(pending, Attempt) and await limits.attempt("10.0.0.5") == 10
    await limits.released(pending)  # could not be checked (database down): it does not count
    signed_in = await limits.attempt("10.0.0.2")
    assert isinstance(signed_in, Attempt) and signed_in.count == 2
    await limits.succeeded(signed_in)  # its address's failures are forgotten, and it leaves the total
    assert isinstance(await limits.attempt("10.0.0.2"), Attempt)
    now[0] += 600
    for n in range(100):  # a flood of addresses, five a window: the least recently failed are forgotten...
        now[0] += 120
        await fail(f"192.0.2.{n}")
    assert limits.addresses == 4
    assert await limits.attempt("10.0.0.1") == 120  # ...and the total still counts all five in the window


@pytest.fixture()
def pinned(tmp_path) -> Iterator[tuple[str, list[datetime]]]:
    now = [datetime(2026, 12, 1, 12, tzinfo=UTC)]  # a database file: a guess is looked up as an admin key
    with running_proxy(config_for(None, f"sqlite:///{tmp_path / 'ui.db'}"), clock=lambda: now[0]) as server:
        yield server.url, now


def test_too_many_wrong_keys_get_429_with_retry_after_until_the_window_passes(pinned, caplog) -> None:
    url, now = pinned
    caplog.set_level(logging.INFO)
    for n in range(PER_ADDRESS):
        assert httpx.post(url + "/ui/login", data={"master_key": f"sk-guess-{n}"}).status_code == 401
    refused = httpx.post(url + "/ui/login", data={"master_key": MASTER_KEY})  # even the right key, now
    assert refused.status_code == 429 and "set-cookie" not in refused.headers
    assert int(refused.headers["retry-after"]) == WINDOW_SECONDS
    assert "Too many failed sign-ins. Try again in 15 minutes." in refused.text
    forwarded = httpx.post(url + "/ui/login", data={"master_key": "sk-guess"},
                           headers={"x-forwarded-for": "203.0.113.7"})
    assert forwarded.status_code == 401  # a loopback peer is a trusted proxy by default: its client counts
    assert httpx.get(url + "/health/liveliness").status_code == 200  # the API is not affected
    now[0] += timedelta(seconds=WINDOW_SECONDS - 1)
    assert httpx.post(url + "/ui/login", data={"master_key": MASTER_KEY}).status_code == 429
    now[0] += timedelta(seconds=1)
    assert httpx.post(url + "/ui/login", data={"master_key": MASTER_KEY}).status_code == 303
    failures = [r.getMessage() for r in caplog.records if "sign-in refused" in r.getMessage()]
    assert len(failures) == PER_ADDRESS + 1 and "127.0.0.1" in failures[-2] and "203.0.113.7" in failures[-1]
    assert not any("sk-guess" in r.getMessage() or MASTER_KEY in r.getMessage() for r in caplog.records)


def test_x_forwarded_for_is_ignored_from_a_peer_that_is_not_a_trusted_proxy(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "192.0.2.1")  # uvicorn's trusted proxies: not loopback
    with running_proxy(config_for(None, f"sqlite:///{tmp_path / 'ui.db'}")) as server:
        for n in range(PER_ADDRESS):
            httpx.post(server.url + "/ui/login", data={"master_key": f"sk-guess-{n}"},
                       headers={"x-forwarded-for": f"203.0.113.{n}"})
        spoofed = httpx.post(server.url + "/ui/login", data={"master_key": MASTER_KEY},
                             headers={"x-forwarded-for": "198.51.100.1"})
        assert spoofed.status_code == 429  # every guess counted against the real peer
