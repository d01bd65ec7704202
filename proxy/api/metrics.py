"""`GET /metrics`: Prometheus exposition; the master key or `metrics_token` required when metrics auth is on."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..errors import PermissionDeniedError
from ..observability.metrics import CONTENT_TYPE

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
@router.get("/metrics/", include_in_schema=False)
async def metrics(request: Request) -> Response:
    runtime = request.app.state.runtime
    telemetry = runtime.telemetry
    if telemetry.metrics_require_auth:
        authorization = request.headers.get("authorization") or ""
        token = telemetry.metrics_token
        if token and hmac.compare_digest(authorization.removeprefix("Bearer ").encode(), token.encode()):
            return Response(await telemetry.metrics.arender(), media_type=CONTENT_TYPE)
        caller = await runtime.authenticator.authenticate(authorization or None)
        if not caller.may_read_admin:
            raise PermissionDeniedError("/metrics needs the master key, a proxy_admin or proxy_admin_viewer key, "
                                        "or general_settings.metrics_token")
    return Response(await telemetry.metrics.arender(), media_type=CONTENT_TYPE)
