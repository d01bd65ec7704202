"""Liveness, readiness and deployment health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .admin_types import ADMIN_RESPONSES, responses
from .deps import AdminDep, RuntimeDep
from .rendering import json_response
from .store_access import in_thread

router = APIRouter(tags=["health"])


@router.get("/health/liveliness")
@router.get("/health/liveness", include_in_schema=False)
async def liveliness() -> dict[str, str]:
    return {"status": "healthy"}


@router.get("/health/readiness", responses={503: {**ADMIN_RESPONSES[503], "description": "database unreachable"}})
async def readiness(runtime: RuntimeDep):
    try:
        db_ok = await in_thread(runtime.store.ping)
    except Exception:
        db_ok = False
    body = {"status": "healthy" if db_ok else "unhealthy", "db": "connected" if db_ok else "unreachable",
            "config_loaded": True, "models": len(runtime.router.aliases)}
    return json_response(body, 200 if db_ok else 503)


@router.get("/health", responses=responses(401, 403, 503))
async def health(_: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Probe every deployment with a tiny rerank call (master key only; calls the providers)."""
    results = await runtime.router.check_health()
    healthy = [r.describe() for r in results if r.ok]
    unhealthy = [r.describe() for r in results if not r.ok]
    return {"healthy_endpoints": healthy, "unhealthy_endpoints": unhealthy,
            "healthy_count": len(healthy), "unhealthy_count": len(unhealthy)}
