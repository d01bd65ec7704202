"""`GET /metrics`: Prometheus exposition; master key required when `general_settings.metrics_require_auth`."""

from __future__ import annotations

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
        caller = await runtime.authenticator.authenticate(request.headers.get("authorization"))
        if not caller.is_admin:
            raise PermissionDeniedError("/metrics needs the master key (general_settings.metrics_require_auth)")
    return Response(await telemetry.metrics.arender(), media_type=CONTENT_TYPE)
