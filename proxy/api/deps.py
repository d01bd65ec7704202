"""FastAPI dependencies: the runtime, the authenticated caller, the admin check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..auth.caller import Caller
from ..errors import PermissionDeniedError
from .runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_caller(request: Request) -> Caller:
    runtime: Runtime = request.app.state.runtime
    return await runtime.authenticator.authenticate(request.headers.get("authorization"))


async def get_admin(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
    if not caller.is_admin:
        raise PermissionDeniedError("this route needs the master key")
    return caller


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
CallerDep = Annotated[Caller, Depends(get_caller)]
AdminDep = Annotated[Caller, Depends(get_admin)]
