"""The admin web UI, served by the proxy itself at `/ui` (see `routes.py`)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import Response

from . import audit_page, holders_page, reports_page
from .routes import router
from .web import HERE, SignInRequired, login_redirect


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(holders_page.router)
    app.include_router(audit_page.router)
    app.include_router(reports_page.router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")

    async def sign_in(request: Request, exc: Exception) -> Response:
        return login_redirect()

    app.add_exception_handler(SignInRequired, sign_in)
