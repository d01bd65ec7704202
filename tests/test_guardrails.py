"""Guardrails on the query: each built-in type on its own, then through a real proxy and fake upstream."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from proxy.errors import InvalidRequestError
from proxy.guardrails import GuardContext, GuardrailChain, GuardrailUnavailableError, build_guardrail
from proxy.guardrails.keywords import BannedKeywords
from proxy.guardrails.length import MaxLength
from proxy.guardrails.patterns import RegexGuardrail
from proxy.guardrails.pii import PiiMask, iban_valid, luhn_valid, mask
from proxy.guardrails.webhook import WebhookError, parse_answer
from proxy.settings import ConfigError, parse_config
from tests.conftest import CAPITALS
from tests.fakes.server import LiveServer
from tests.serving import MASTER_KEY, admin, config_for, running_proxy, wait_until

CONTEXT = GuardContext(model="m")

# --- pii_mask --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "masked", "entities"),
    [
        ("write to john.doe+news@example.co.uk today", "write to <EMAIL> today", ("EMAIL",)),
        ("call +1 (555) 123-4567 now", "call <PHONE> now", ("PHONE",)),
        ("or 555-123-4567, +44 20 7946 0958, +4915112345678", "or <PHONE>, <PHONE>, <PHONE>", ("PHONE",)),
        ("card 4111 1111 1111 1111 ok", "card <CREDIT_CARD> ok", ("CREDIT_CARD",)),
        ("amex 378282246310005", "amex <CREDIT_CARD>", ("CREDIT_CARD",)),
        ("pay DE89 3704 0044 0532 0130 00 please", "pay <IBAN> please", ("IBAN",)),
        ("iban GB82WEST12345698765432", "iban <IBAN>", ("IBAN",)),
        ("ssn 123-45-6789 on file", "ssn <SSN> on file", ("SSN",)),
        ("from 192.168.10.1 and 10.0.0.1.", "from <IP_ADDRESS> and <IP_ADDRESS>.", ("IP_ADDRESS",)),
        ("host 2001:db8::8a2e:370:7334 or ::1", "host <IP_ADDRESS> or <IP_ADDRESS>", ("IP_ADDRESS",)),
        ("mail a@b.io from 8.8.8.8", "mail <EMAIL> from <IP_ADDRESS>", ("EMAIL", "IP_ADDRESS")),
    ],
)
def test_pii_entities_are_found_and_masked(query, masked, entities):
    assert mask(query) == (masked, entities)


@pytest.mark.parametrize(
    "query",
    [
        "released 2024-01-15 in 2024 at 10:30:45",
        "pi is 3.14159, version 1.2.3, order 1234567, 12 apples",
        "card 4111 1111 1111 1112 fails Luhn",
        "iban DE89 3704 0044 0532 0130 01 fails mod-97",
        "ip 999.1.1.1 and 10.0.0.256 are not addresses",
        "C++ std::vector and a::b are code",
        "What is the capital of the United States?",
    ],
)
def test_pii_leaves_ordinary_text_alone(query):
    assert mask(query) == (query, ())


def test_checksums():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("DE89 3704 0044 0532 0130 00") and not iban_valid("DE00 3704 0044 0532 0130 00")


def test_pii_entities_are_configurable_and_block_mode_names_types_only():
    only_email = PiiMask(entities=["EMAIL_ADDRESS"])
    decision = only_email.check("a@b.io 123-45-6789", CONTEXT)
    assert decision.action == "mask" and decision.query == "<EMAIL> 123-45-6789"
    blocking = PiiMask(on_flagged="block")
    decision = blocking.check("ssn 123-45-6789", CONTEXT)
    assert decision.action == "block" and decision.entities == ("SSN",)
    assert "123" not in decision.reason and "SSN" in decision.reason
    assert PiiMask().check("nothing personal", CONTEXT).action == "allow"


# --- banned_keywords, regex, max_length ------------------------------------------------------------


def test_banned_keywords_match_whole_words_without_case():
    guard = BannedKeywords(keywords=["password", "api key", "c++"])
    assert guard.check("my PassWord is", CONTEXT).action == "block"
    assert guard.check("where is the API   key", CONTEXT).action == "block"
    assert guard.check("learn C++ today", CONTEXT).action == "block"
    assert guard.check("passwords and apikeys", CONTEXT).action == "allow"


def test_regex_blocks_or_masks():
    blocker = RegexGuardrail(patterns=[{"name": "sql", "pattern": r"(?i)drop\s+table"}])
    decision = blocker.check("please DROP  TABLE users", CONTEXT)
    assert decision.action == "block" and "sql" in decision.reason and "users" not in decision.reason
    masker = RegexGuardrail(patterns=[r"ID-\d+"], on_flagged="mask")
    assert masker.check("order ID-123 and ID-9", CONTEXT).query == "order <REDACTED> and <REDACTED>"


def test_max_length_counts_characters_and_estimated_tokens():
    assert MaxLength(max_chars=10).check("x" * 11, CONTEXT).action == "block"
    assert MaxLength(max_chars=10).check("x" * 10, CONTEXT).action == "allow"
    assert MaxLength(max_tokens=3).check("x" * 12, CONTEXT).action == "block"
    assert MaxLength(max_tokens=3).check("x" * 8, CONTEXT).action == "allow"


def test_webhook_answer_contract():
    assert parse_answer({"action": "allow"}).action == "allow"
    assert parse_answer({"action": "block", "reason": "nope"}).reason == "nope"
    assert parse_answer({"action": "rewrite", "query": "q2"}).query == "q2"
    for bad in ({"action": "rewrite"}, {"action": "rewrite", "query": " "}, {"verdict": "ok"}, [], "allow"):
        with pytest.raises(WebhookError):
            parse_answer(bad)


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"guardrail": "nope"}, "unknown guardrail type"),
        ({"guardrail": "pii_mask", "mode": "post_call"}, "mode must be pre_call"),
        ({"guardrail": "pii_mask", "entities": ["DNA"]}, "unknown PII entity"),
        ({"guardrail": "pii_mask", "colour": "red"}, "invalid options"),
        ({"guardrail": "regex", "patterns": ["("]}, "not a valid regex"),
        ({"guardrail": "banned_keywords", "keywords": []}, "non-empty list"),
        ({"guardrail": "max_length"}, "max_chars"),
        ({"guardrail": "webhook", "api_base": "ftp://x"}, "http(s) URL"),
        ({"guardrail": "webhook", "api_base": "http://x", "on_error": "maybe"}, "on_error"),
        ({"guardrail": "custom", "custom": "tests.guardrail_plugins:Missing"}, "has no class"),
        ({"guardrail": "custom", "custom": "no_such_module_xyz:Thing"}, "cannot import"),
    ],
)
def test_bad_guardrail_config_is_refused_with_its_path(params, problem):
    with pytest.raises(ConfigError) as error:
        parse_config({"guardrails": [{"guardrail_name": "g", "litellm_params": params}]}, {})
    assert "guardrails[0].litellm_params" in str(error.value) and problem in str(error.value)


def test_guardrail_names_must_be_unique():
    entry = {"guardrail_name": "g", "litellm_params": {"guardrail": "pii_mask"}}
    with pytest.raises(ConfigError, match="unique"):
        parse_config({"guardrails": [entry, entry]}, {})


def test_chain_selection_and_order():
    chain = GuardrailChain([build_guardrail(n, {"guardrail": "max_length", "max_chars": 5, "default_on": n == "b"})
                            for n in ("a", "b", "c")])
    assert [g.name for g in chain.select(None, None)] == ["b"]
    assert [g.name for g in chain.select(["c"], ["a"])] == ["a", "b", "c"]
    with pytest.raises(InvalidRequestError, match="unknown guardrail"):
        chain.select(None, ["zzz"])
    with pytest.raises(GuardrailUnavailableError) as missing:  # a key naming one the config no longer has
        chain.select(["gone"], None)
    assert missing.value.status == 503


def test_custom_guardrail_gets_its_options():
    configured = build_guardrail("s", {"guardrail": "custom", "custom": "tests.guardrail_plugins:ShoutingBlocker",
                                       "min_letters": 2})
    assert configured.guardrail.min_letters == 2 and configured.type == "custom"


# --- through the proxy -----------------------------------------------------------------------------


class GuardService:
    """A guardrail webhook on loopback: decides by marker words and records what it was sent."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], dict]] = []

    async def check(self, request: Request) -> JSONResponse:
        payload = await request.json()
        self.received.append((dict(request.headers), payload))
        query = payload["query"]
        if "please-block" in query:
            return JSONResponse({"action": "block", "reason": "the service said no"})
        if "please-rewrite" in query:
            return JSONResponse({"action": "rewrite", "query": "rewritten by the service"})
        if "please-hang" in query:
            for _ in range(200):  # until the proxy gives up and hangs up
                if await request.is_disconnected():
                    break
                await asyncio.sleep(0.05)
            return JSONResponse({"action": "allow"})
        if "please-fail" in query:
            return JSONResponse({"error": "boom"}, status_code=500)
        if "please-garble" in query:
            return JSONResponse({"verdict": "fine"})
        return JSONResponse({"action": "allow"})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/check", self.check, methods=["POST"])])


@pytest.fixture(scope="module")
def guard_service():
    service = GuardService()
    with LiveServer(service.app()) as server:
        service.url = server.url + "/check"
        yield service


def _guardrails(hook_url: str) -> list[dict]:
    def entry(name: str, **params) -> dict:
        return {"guardrail_name": name, "litellm_params": {"mode": "pre_call", **params}}

    return [
        entry("pii-strict", guardrail="pii_mask", on_flagged="block", entities=["CREDIT_CARD", "US_SSN"]),
        entry("pii", guardrail="pii_mask", default_on=True),
        entry("no-secrets", guardrail="banned_keywords", keywords=["password", "api key"]),
        entry("no-sql", guardrail="regex", patterns=[{"name": "sql", "pattern": r"(?i)drop\s+table"}]),
        entry("redact-ids", guardrail="regex", on_flagged="mask", patterns=[r"ID-\d+"]),
        entry("short", guardrail="max_length", max_chars=80),
        entry("hook-open", guardrail="webhook", api_base=hook_url, timeout=0.3, on_error="allow",
              api_key="hook-secret"),
        entry("hook-closed", guardrail="webhook", api_base=hook_url, timeout=0.3, on_error="block"),
        entry("no-shouting", guardrail="custom", custom="tests.guardrail_plugins:ShoutingBlocker", min_letters=4),
        entry("team-tag", guardrail="custom", custom="tests.guardrail_plugins:TeamTagger"),
        entry("broken-open", guardrail="custom", custom="tests.guardrail_plugins:Broken", on_error="allow"),
    ]


@pytest.fixture(scope="module")
def proxy_url(fake_cohere, guard_service, tmp_path_factory):
    db = tmp_path_factory.mktemp("guard-db") / "spend.db"
    config = config_for(fake_cohere.url, f"sqlite:///{db}")
    config["guardrails"] = _guardrails(guard_service.url)
    with running_proxy(config) as server:
        yield server.url


def rerank(url: str, query: str, *, key: str = MASTER_KEY, documents: list | None = None, **extra) -> httpx.Response:
    body = {"model": "rerank-english-v3.0", "query": query, "documents": documents or CAPITALS, **extra}
    return httpx.post(url + "/v2/rerank", headers={"Authorization": f"Bearer {key}"}, json=body, timeout=30)


def test_default_pii_guardrail_masks_the_query_and_never_the_documents(proxy_url, cohere_upstream):
    documents = ["Contact jane@corp.example or +1 (555) 123-4567", "card 4111 1111 1111 1111, ip 10.1.2.3"]
    query = "who owns jane@corp.example, 4111 1111 1111 1111, DE89 3704 0044 0532 0130 00 or 10.1.2.3?"
    response = rerank(proxy_url, query, documents=documents)
    assert response.status_code == 200, response.text
    sent = cohere_upstream.last.body
    assert sent["query"] == "who owns <EMAIL>, <CREDIT_CARD>, <IBAN> or <IP_ADDRESS>?"
    assert sent["documents"] == documents


def test_pii_block_mode_refuses_without_echoing_the_value(proxy_url, cohere_upstream):
    response = rerank(proxy_url, "is 123-45-6789 valid?", guardrails=["pii-strict"])
    assert response.status_code == 400
    message = response.json()["message"]
    assert "pii-strict" in message and "123-45-6789" not in message and "6789" not in message
    assert cohere_upstream.requests == []


def test_banned_keywords_only_when_selected(proxy_url, cohere_upstream):
    blocked = rerank(proxy_url, "what is the admin Password", guardrails=["no-secrets"])
    assert blocked.status_code == 400 and "no-secrets" in blocked.json()["message"]
    assert "assword" not in blocked.json()["message"]
    assert rerank(proxy_url, "what is the admin Password").status_code == 200  # not default_on
    assert rerank(proxy_url, "passwords policy", guardrails=["no-secrets"]).status_code == 200


def test_regex_guardrails_block_and_mask(proxy_url, cohere_upstream):
    blocked = rerank(proxy_url, "please drop   TABLE users", guardrails=["no-sql"])
    assert blocked.status_code == 400 and "no-sql" in blocked.json()["message"]
    assert "users" not in blocked.json()["message"]
    assert rerank(proxy_url, "status of ID-4242", guardrails=["redact-ids"]).status_code == 200
    assert cohere_upstream.last.body["query"] == "status of <REDACTED>"


def test_max_length_guardrail(proxy_url, cohere_upstream):
    response = rerank(proxy_url, "a" * 81, guardrails=["short"])
    assert response.status_code == 400 and "80 characters" in response.json()["message"]
    assert rerank(proxy_url, "a" * 80, guardrails=["short"]).status_code == 200


def test_unknown_guardrail_in_a_request_is_400(proxy_url):
    response = rerank(proxy_url, "q", guardrails=["no-such-guardrail"])
    assert response.status_code == 400 and "no-such-guardrail" in response.json()["message"]


def test_guardrails_assigned_to_a_key_always_run_for_it(proxy_url):
    with admin(proxy_url) as client:
        assert client.post("/key/generate", json={"guardrails": ["nope"]}).status_code == 400
        key = client.post("/key/generate", json={"guardrails": ["no-secrets"]}).json()["key"]
    response = rerank(proxy_url, "my api key please", key=key)
    assert response.status_code == 400 and "no-secrets" in response.json()["message"]
    assert rerank(proxy_url, "capital cities", key=key).status_code == 200


def test_webhook_allow_sees_the_masked_query_and_the_caller(proxy_url, guard_service, cohere_upstream):
    with admin(proxy_url) as client:
        key = client.post("/key/generate", json={"key_alias": "hooked", "user_id": "owner-1"}).json()["key"]
    guard_service.received.clear()
    response = rerank(proxy_url, "capital for x@y.org", key=key, guardrails=["hook-open"], user="eve",
                      metadata={"team": "search"})
    assert response.status_code == 200
    headers, payload = guard_service.received[-1]
    assert headers["authorization"] == "Bearer hook-secret"
    assert payload == {"guardrail": "hook-open", "query": "capital for <EMAIL>", "key_alias": "hooked",
                       "user_id": "owner-1", "end_user": "eve", "model": "rerank-english-v3.0",
                       "metadata": {"team": "search"}}


def test_webhook_block_and_rewrite(proxy_url, cohere_upstream):
    blocked = rerank(proxy_url, "please-block this", guardrails=["hook-open"])
    assert blocked.status_code == 400
    assert blocked.json()["message"] == "Blocked by guardrail 'hook-open': the service said no."
    assert cohere_upstream.requests == []
    assert rerank(proxy_url, "please-rewrite this", guardrails=["hook-closed"]).status_code == 200
    assert cohere_upstream.last.body["query"] == "rewritten by the service"


@pytest.mark.parametrize("marker", ["please-hang", "please-fail", "please-garble"])
def test_webhook_errors_fail_open_or_closed_as_configured(proxy_url, cohere_upstream, marker):
    opened = rerank(proxy_url, f"{marker} capital", guardrails=["hook-open"])
    assert opened.status_code == 200
    assert cohere_upstream.last.body["query"] == f"{marker} capital"
    closed = rerank(proxy_url, f"{marker} capital", guardrails=["hook-closed"])
    assert closed.status_code == 503 and "hook-closed" in closed.json()["message"]
    assert marker not in closed.json()["message"] and closed.headers["retry-after"]


def test_custom_guardrail_classes(proxy_url, cohere_upstream):
    blocked = rerank(proxy_url, "WHAT IS THE CAPITAL", guardrails=["no-shouting"])
    assert blocked.status_code == 400 and "please do not shout" in blocked.json()["message"]
    tagged = rerank(proxy_url, "capital", guardrails=["team-tag"], metadata={"team": "geo"})
    assert tagged.status_code == 200 and cohere_upstream.last.body["query"] == "[geo] capital"
    assert rerank(proxy_url, "capital", guardrails=["broken-open"]).status_code == 200


def test_guardrail_decisions_are_on_the_spend_row_without_content(proxy_url):
    with admin(proxy_url) as client:
        key = client.post("/key/generate", json={"key_alias": "audited"}).json()["key"]
        assert rerank(proxy_url, "mail me at bob@corp.example", key=key).status_code == 200
        assert rerank(proxy_url, "the password", key=key, guardrails=["no-secrets"]).status_code == 400

        def rows():
            found = client.get("/spend/logs", params={"api_key": key}).json()
            return found if len(found) == 2 else None

        logged = wait_until(rows)
    by_status = {row["status"]: row for row in logged}
    assert by_status[200]["guardrails"] == [{"name": "pii", "type": "pii_mask", "action": "masked",
                                            "entities": ["EMAIL"]}]
    assert by_status[400]["guardrails"] == [
        {"name": "pii", "type": "pii_mask", "action": "allowed"},
        {"name": "no-secrets", "type": "banned_keywords", "action": "blocked"},
    ]
    assert by_status[400]["error_class"] == "GuardrailBlockedError" and by_status[400]["deployment"] is None
    assert "bob@corp" not in str(logged) and "password" not in str(logged)


def test_the_commented_guardrails_example_in_the_config_example_is_valid():
    from pathlib import Path

    import yaml

    text = (Path(__file__).resolve().parent.parent / "config.example.yaml").read_text()
    block = text[text.index("# guardrails:"):]
    uncommented = "\n".join(line.removeprefix("# ") for line in block.splitlines() if line.startswith("#"))
    uncommented = uncommented.replace("mypkg.guardrails:MyGuardrail", "tests.guardrail_plugins:ShoutingBlocker")
    settings = parse_config(yaml.safe_load(uncommented), {"GUARDRAIL_SERVICE_KEY": "k"})
    names = [entry.guardrail_name for entry in settings.config.guardrails]
    assert names == ["pii", "no-secrets", "no-sql", "short-queries", "moderation", "mine"]
    sql = build_guardrail("no-sql", settings.config.guardrails[2].litellm_params)
    assert sql.guardrail.check("Drop  Table x", CONTEXT).action == "block"
