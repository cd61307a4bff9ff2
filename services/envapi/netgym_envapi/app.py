"""The FastAPI app: routers, the data port, the session manager, error bodies."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from netgym.errors import InvalidRequestError, NetgymError
from netgym_envapi.api import envs, health, sessions
from netgym_envapi.api.guard import RequestGuard
from netgym_envapi.dataport import DataPort
from netgym_envapi.sessions.manager import SessionManager
from netgym_envapi.settings import Settings

log = logging.getLogger("netgym.envapi")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The envapi app; its lifespan starts the data port and ends every session on exit."""
    settings = settings or Settings()
    settings.check_bind()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        manager = SessionManager(settings)
        manager.start()
        dataport = DataPort(settings, manager)
        await dataport.start()
        app.state.settings, app.state.sessions, app.state.dataport = settings, manager, dataport
        log.info("data port listening on %s:%d", settings.host, dataport.port)
        try:
            yield
        finally:
            await dataport.stop()
            await manager.shutdown()

    app = FastAPI(title="netgym envapi", version="0.1.0", lifespan=lifespan)
    app.add_middleware(RequestGuard, settings=settings)
    app.include_router(health.router)
    app.include_router(envs.router)
    app.include_router(sessions.router)

    @app.exception_handler(NetgymError)
    async def netgym_error(request: Request, exc: NetgymError) -> JSONResponse:
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # An unknown path or method: the same error body as every other error.
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = f"{request.method} {request.url.path}: {exc.detail}"
        body = {"error": {"code": code, "message": message, "details": {}}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        message = f"the envapi failed on {request.method} {request.url.path}: {exc!r}"
        body = {"error": {"code": "internal", "message": message, "details": {}}}
        return JSONResponse(body, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        error = InvalidRequestError(
            f"invalid request: {problems}", details={"errors": exc.errors()}
        )
        return JSONResponse({"error": error.to_dict()}, status_code=error.http_status)

    return app
