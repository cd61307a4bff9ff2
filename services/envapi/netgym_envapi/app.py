"""The FastAPI app: routers, the data port, the session manager, error bodies."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from netgym_envapi.api import envs, health, sessions
from netgym_envapi.api.deps import UNAUTHORIZED_MESSAGE, needs_token
from netgym_envapi.dataport import DataPort
from netgym_envapi.sessions.manager import SessionManager
from netgym_envapi.settings import Settings
from netgym_http.errors import install_error_handlers
from netgym_http.guard import RequestGuard

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
    app.add_middleware(
        RequestGuard,
        token=settings.token,
        guarded=needs_token,
        unauthorized=UNAUTHORIZED_MESSAGE,
    )
    app.include_router(health.router)
    app.include_router(envs.router)
    app.include_router(sessions.router)

    install_error_handlers(app, "envapi", log)
    return app
