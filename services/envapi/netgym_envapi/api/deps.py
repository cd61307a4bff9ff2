"""Dependencies the routes share: settings, the session manager, the token check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from netgym.errors import AuthenticationError
from netgym_envapi.dataport import DataPort
from netgym_envapi.sessions.manager import SessionManager
from netgym_envapi.settings import Settings


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
    """Check ``Authorization: Bearer <token>`` when the service has a token."""
    if settings.token is None:
        return
    expected = settings.token.get_secret_value().encode()
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected):
        raise AuthenticationError(
            "wrong or missing token: send 'Authorization: Bearer <token>' "
            "(the client takes token=... or NETGYM_TOKEN)"
        )


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionsDep = Annotated[SessionManager, Depends(get_sessions)]
DataPortDep = Annotated[DataPort, Depends(get_dataport)]
