"""FastAPI dependencies: the runtime, the authenticated caller, the admin checks (by role: `auth/roles.py`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..auth.caller import Caller
from ..auth.roles import refusal
from ..errors import PermissionDeniedError
from .runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_caller(request: Request) -> Caller:
    runtime: Runtime = request.app.state.runtime
    return await runtime.authenticator.authenticate(request.headers.get("authorization"))


async def get_admin(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
    """A route that changes something: the master key or a proxy_admin's key."""
    if not caller.may_administer:
        raise PermissionDeniedError(refusal(caller.role, write=True))
    return caller


async def get_admin_reader(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
    """A route that only reads: also a proxy_admin_viewer's key."""
    if not caller.may_read_admin:
        raise PermissionDeniedError(refusal(caller.role, write=False))
    return caller


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
CallerDep = Annotated[Caller, Depends(get_caller)]
AdminDep = Annotated[Caller, Depends(get_admin)]
AdminReaderDep = Annotated[Caller, Depends(get_admin_reader)]
