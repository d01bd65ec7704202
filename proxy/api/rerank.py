"""`POST /rerank`, `/v1/rerank` (v1 semantics) and `/v2/rerank` (v2 semantics).

`RerankFastPath` answers these three routes as pure ASGI: one pass over the raw headers, the body read
straight from `receive`, the answer sent as two raw messages. The FastAPI routes below run the same `answer`
and exist for the OpenAPI docs (and for an app built without the fast path).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..auth.roles import PROXY_ADMIN_VIEWER, VIEWER_NO_RERANK
from ..engine import Call
from ..errors import (
    InternalError,
    InvalidRequestError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ProxyError,
    ServerBusyError,
    UnprocessableRequestError,
)
from ..tags import merged, request_tags
from ..wire import RerankBody, RerankResponse
from .rendering import dumps, error_headers, raw_json_response, validation_message

router = APIRouter(tags=["rerank"])
log = logging.getLogger("proxy.api")

END_USER_HEADERS = (b"x-end-user-id", b"x-litellm-end-user-id", b"x-litellm-customer-id")
TAGS_HEADER = b"x-litellm-tags"
_READ_HEADERS = frozenset((b"authorization", b"content-length", b"cache-control", TAGS_HEADER, *END_USER_HEADERS))
_JSON = (b"content-type", b"application/json")
_DOC = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": RerankBody.model_json_schema()}}},
    "responses": {"200": {"description": "Cohere rerank response",
                          "content": {"application/json": {"schema": RerankResponse.model_json_schema()}}}},
}


@dataclass(slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    async def send(self, send: Send) -> None:
        raw = [_JSON, (b"content-length", str(len(self.body)).encode())]
        raw += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in self.headers.items()]
        await send({"type": "http.response.start", "status": self.status, "headers": raw})
        await send({"type": "http.response.body", "body": self.body})

    def response(self) -> Response:
        return raw_json_response(self.body, self.status, self.headers)


def read_headers(scope: Scope) -> dict[bytes, str]:
    """The few request headers this route reads, in one pass (the first of repeated names wins)."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in _READ_HEADERS and name not in found:
            found[name] = value.decode("latin-1")
    return found


async def read_body(receive: Receive, declared: int | None, limit: int) -> bytes:
    """The request body (`declared`: its content-length), refused with 413 as soon as it is known to exceed
    `limit` bytes."""
    if declared is not None and declared > limit:
        raise PayloadTooLargeError(f"request body is larger than the {limit} byte limit")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequestError("the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body is larger than the {limit} byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_body(raw: bytes) -> RerankBody:
    if not raw.strip():
        raise InvalidRequestError("invalid request: the body is empty; send a JSON object")
    try:
        return RerankBody.model_validate_json(raw)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise InvalidRequestError("invalid request: the body is not valid JSON") from None
        if any(e["type"] == "model_type" and not e["loc"] for e in exc.errors()):
            raise InvalidRequestError("invalid request: the body must be a JSON object") from None
        raise UnprocessableRequestError(validation_message(list(exc.errors()))) from None


def end_user_of(body: RerankBody, headers: dict[bytes, str]) -> str | None:
    """The end-user id, refused (400) unless every database can store it: a NUL byte or a lone surrogate
    would make its spend row unwritable, and the call free."""
    user = body.user
    if not user:
        for name in END_USER_HEADERS:
            user = headers.get(name)
            if user:
                break
        else:
            return None
    if "\x00" in user or (not user.isascii() and not _encodable(user)):
        raise InvalidRequestError("invalid request: the end-user id ('user' or its header) contains a NUL byte "
                                  "or a lone UTF-16 surrogate; send text that is valid UTF-8 without NUL")
    return user


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def answer(scope: Scope, receive: Receive, api_version: int) -> Reply:
    runtime = scope["app"].state.runtime
    headers: dict[str, str] = {}
    call: Call | None = None
    held = 0
    try:
        wanted = read_headers(scope)
        caller = await runtime.authenticator.authenticate(wanted.get(b"authorization"))
        if caller.role == PROXY_ADMIN_VIEWER:
            raise PermissionDeniedError(VIEWER_NO_RERANK)
        length, limit = wanted.get(b"content-length"), runtime.max_request_bytes
        declared = int(length) if length and length.isdigit() else None
        size = limit if declared is None or declared > limit else declared  # read_body refuses more
        if not runtime.body_budget.take(size):
            raise ServerBusyError("the proxy is holding as many request bodies as its memory budget allows "
                                  "(general_settings.max_request_body_memory_mb); retry shortly")
        held = size
        raw = await read_body(receive, declared, limit)
        if len(raw) < held:  # a chunked body: hold what it really is
            runtime.body_budget.give_back(held - len(raw))
            held = len(raw)
        body = parse_body(raw)
        del raw  # the parsed body is what the call keeps
        header_tags = wanted.get(TAGS_HEADER)
        asked = request_tags(body.metadata, header_tags) if body.metadata or header_tags else None
        call = Call(body=body, caller=caller, api_version=api_version, end_user=end_user_of(body, wanted),
                    cache_control=wanted.get(b"cache-control"),
                    tags=merged(asked, caller.tags) if asked else caller.tags)
        await runtime.engine.rerank(call)
    except ProxyError as exc:
        if call is not None:
            _describe(call, headers)
        return Reply(exc.status, error_headers(exc, headers), dumps(exc.body()))
    finally:
        runtime.body_budget.give_back(held)
    _describe(call, headers)
    return Reply(200, headers, (call.outcome.response or call.outcome.answer()).json_bytes())


def _describe(call: Call, headers: dict[str, str]) -> None:
    headers["x-request-id"] = call.request_id
    if call.outcome.deployment is not None:
        headers["x-model-deployment"] = call.outcome.deployment.id
    elif call.response is not None and call.response.deployment:  # a cached answer: who gave it
        headers["x-model-deployment"] = call.response.deployment
    headers["x-fallback-used"] = "true" if call.outcome.fallback_used else "false"
    headers["x-response-cost"] = format(call.cost.normalize(), "f") if call.cost else "0"
    headers["x-proxy-overhead-ms"] = f"{call.overhead_ms:.3f}"
    if call.cache is not None and call.error is None:
        headers["x-cache"] = call.cache.status
        headers["x-cache-saved-cost"] = format(call.cache.saved.normalize(), "f") if call.cache.saved else "0"


class RerankFastPath:
    """Pure-ASGI middleware that serves `POST /rerank`, `/v1/rerank` and `/v2/rerank` itself.

    Same `answer` as the FastAPI routes below, minus the framework's request, routing, exception and response
    layers: about a third of a request's CPU in the profile (bench/). An unexpected exception still gets the
    gateway's JSON 500, never a stack trace.
    """

    VERSIONS = {"/rerank": 1, "/v1/rerank": 1, "/v2/rerank": 2}

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        version = self.VERSIONS.get(scope["path"]) if scope["type"] == "http" else None
        if version is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            reply = await answer(scope, receive, version)
        except Exception as exc:
            log.error("unexpected error on POST %s: %s", scope["path"], type(exc).__name__, exc_info=exc)
            reply = Reply(500, {}, dumps(InternalError().body()))
        await reply.send(send)


@router.post("/rerank", openapi_extra=_DOC, summary="Rerank (Cohere v1 semantics)")
async def rerank(request: Request) -> Response:
    return (await answer(request.scope, request.receive, api_version=1)).response()


@router.post("/v1/rerank", openapi_extra=_DOC, summary="Rerank (Cohere v1)")
async def rerank_v1(request: Request) -> Response:
    return (await answer(request.scope, request.receive, api_version=1)).response()


@router.post("/v2/rerank", openapi_extra=_DOC, summary="Rerank (Cohere v2)")
async def rerank_v2(request: Request) -> Response:
    return (await answer(request.scope, request.receive, api_version=2)).response()
