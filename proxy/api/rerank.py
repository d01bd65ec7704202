"""`POST /rerank`, `/v1/rerank` (v1 semantics) and `/v2/rerank` (v2 semantics)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..engine import Call
from ..errors import InvalidRequestError, PayloadTooLargeError, ProxyError, UnprocessableRequestError
from ..wire import RerankBody, RerankResponse
from .rendering import error_response, raw_json_response, validation_message

router = APIRouter(tags=["rerank"])

END_USER_HEADERS = ("x-end-user-id", "x-litellm-end-user-id", "x-litellm-customer-id")
_DOC = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": RerankBody.model_json_schema()}}},
    "responses": {"200": {"description": "Cohere rerank response",
                          "content": {"application/json": {"schema": RerankResponse.model_json_schema()}}}},
}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body is larger than the {limit} byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body is larger than the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


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


def end_user_of(body: RerankBody, request: Request) -> str | None:
    if body.user:
        return body.user
    for name in END_USER_HEADERS:
        value = request.headers.get(name)
        if value:
            return value
    return None


async def serve(request: Request, api_version: int) -> Response:
    runtime = request.app.state.runtime
    headers: dict[str, str] = {}
    call: Call | None = None
    try:
        caller = await runtime.authenticator.authenticate(request.headers.get("authorization"))
        limit = int(runtime.settings.general.max_request_size_mb * 1024 * 1024)
        body = parse_body(await read_body(request, limit))
        call = Call(body=body, caller=caller, api_version=api_version, end_user=end_user_of(body, request))
        headers["x-request-id"] = call.request_id
        await runtime.engine.rerank(call)
    except ProxyError as exc:
        if call is not None:
            _describe(call, headers)
        return error_response(exc, headers)
    _describe(call, headers)
    return raw_json_response(orjson.dumps(call.response.payload), 200, headers)


def _describe(call: Call, headers: dict[str, str]) -> None:
    headers["x-request-id"] = call.request_id
    if call.outcome.deployment is not None:
        headers["x-model-deployment"] = call.outcome.deployment.id
    headers["x-fallback-used"] = "true" if call.outcome.fallback_used else "false"
    headers["x-response-cost"] = format(call.cost.normalize(), "f") if call.cost else "0"
    headers["x-proxy-overhead-ms"] = f"{call.overhead_ms:.3f}"


class RerankFastPath:
    """Pure-ASGI middleware that serves `POST /rerank`, `/v1/rerank` and `/v2/rerank` itself.

    Same `serve` as the FastAPI routes below (which stay for the OpenAPI docs), minus the framework's routing,
    exception and dependency layers: about a third of a request's CPU in the profile (bench/).
    """

    VERSIONS = {"/rerank": 1, "/v1/rerank": 1, "/v2/rerank": 2}

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        version = self.VERSIONS.get(scope["path"]) if scope["type"] == "http" else None
        if version is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        response = await serve(Request(scope, receive), version)
        await response(scope, receive, send)


@router.post("/rerank", openapi_extra=_DOC, summary="Rerank (Cohere v1 semantics)")
async def rerank(request: Request) -> Response:
    return await serve(request, api_version=1)


@router.post("/v1/rerank", openapi_extra=_DOC, summary="Rerank (Cohere v1)")
async def rerank_v1(request: Request) -> Response:
    return await serve(request, api_version=1)


@router.post("/v2/rerank", openapi_extra=_DOC, summary="Rerank (Cohere v2)")
async def rerank_v2(request: Request) -> Response:
    return await serve(request, api_version=2)
