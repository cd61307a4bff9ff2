"""Dependencies the routes share: settings, the session manager, the token check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from netgym.errors import AuthenticationError
from netgym_envapi.dataport import DataPort
from netgym_envapi.sessions.manager import SessionManager
from netgym_envapi.settings import Settings
from netgym_http.guard import token_matches

OPEN_PATHS = frozenset({"/v1/health"})
UNAUTHORIZED_MESSAGE = (
    "wrong or missing token: send 'Authorization: Bearer <token>' "
    "(the client takes token=... or NETGYM_TOKEN)"
)


def needs_token(path: str) -> bool:
    """Every ``/v1/`` path but health."""
    return path.startswith("/v1/") and path not in OPEN_PATHS


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_sessions(request: Request) -> SessionManager:
    sessions: SessionManager = request.app.state.sessions
    return sessions


def get_dataport(request: Request) -> DataPort:
    dataport: DataPort = request.app.state.dataport
    return dataport


def require_token(
    settings: Annotated[Settings, Depends(get_settings)],
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """Check ``Authorization: Bearer <token>`` when the service has a token.

    ``RequestGuard`` has checked it already, before the body was read; this
    keeps each route safe on its own.
    """
    if not token_matches(settings.token, authorization):
        raise AuthenticationError(UNAUTHORIZED_MESSAGE)


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionsDep = Annotated[SessionManager, Depends(get_sessions)]
DataPortDep = Annotated[DataPort, Depends(get_dataport)]
