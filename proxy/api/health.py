"""Liveness, readiness and deployment health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..errors import StoreUnavailableError
from .admin_types import responses
from .deps import AdminReaderDep, RuntimeDep
from .rendering import json_response

router = APIRouter(tags=["health"])


@router.get("/health/liveliness")
@router.get("/health/liveness", include_in_schema=False)
async def liveliness() -> dict[str, str]:
    return {"status": "healthy"}


@router.get("/health/readiness")
async def readiness(runtime: RuntimeDep):
    """200 whenever this process can serve (config loaded, cached keys usable): a database blip must not take
    every replica out of a load balancer at once. The database's state is reported beside it, read through
    the gate so the probe itself never outlasts the read deadline."""
    gate = runtime.gate
    db = "connecting"
    if gate.connected:
        try:
            db = "connected" if await gate.fetch("readiness", runtime.store.ping) else "unreachable"
        except StoreUnavailableError:
            db = "unreachable"
    body = {"status": "healthy", "db": db, "config_loaded": True, "models": len(runtime.router.aliases),
            "spend_queue": runtime.writer.depth}
    return json_response(body, 200)


@router.get("/health", responses=responses(401, 403, 503))
async def health(_: AdminReaderDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Probe every deployment with a tiny rerank call (admin roles only; calls the providers)."""
    results = await runtime.router.check_health()
    healthy = [r.describe() for r in results if r.ok]
    unhealthy = [r.describe() for r in results if not r.ok]
    return {"healthy_endpoints": healthy, "unhealthy_endpoints": unhealthy,
            "healthy_count": len(healthy), "unhealthy_count": len(unhealthy)}
