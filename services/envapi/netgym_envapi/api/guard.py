"""Checks made on every request before any route runs: the token, the body's size.

FastAPI reads and parses a request's body before the route's dependencies run,
``require_token`` included, so without this middleware anyone who reaches the
port could make the service read (and hold in memory) a body of any size. This
pure ASGI middleware refuses a request without the token before reading a byte
of its body, and refuses a body above ``MAX_BODY_BYTES`` whether or not it
announces its length (a chunked body does not).
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from netgym.errors import AuthenticationError, MessageTooLargeError, NetgymError
from netgym_envapi.settings import Settings

MAX_BODY_BYTES = 1 << 20  # REST bodies are small JSON documents
OPEN_PATHS = frozenset({"/v1/health"})


def token_matches(settings: Settings, authorization: str | None) -> bool:
    """Whether ``Authorization: Bearer <token>`` carries the service's token (or none is set)."""
    if settings.token is None:
        return True
    expected = settings.token.get_secret_value().encode()
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), expected)


UNAUTHORIZED_MESSAGE = (
    "wrong or missing token: send 'Authorization: Bearer <token>' "
    "(the client takes token=... or NETGYM_TOKEN)"
)


class RequestGuard:
    """ASGI middleware: the token for ``/v1/*`` (but health), and a cap on body size."""

    def __init__(
        self, app: ASGIApp, settings: Settings, max_body_bytes: int = MAX_BODY_BYTES
    ) -> None:
        self.app = app
        self.settings = settings
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if (
            path.startswith("/v1/")
            and path not in OPEN_PATHS
            and not token_matches(self.settings, _header(scope, b"authorization"))
        ):
            await _refuse(send, AuthenticationError(UNAUTHORIZED_MESSAGE))
            return
        announced = _header(scope, b"content-length")
        if announced is not None and announced.isdigit() and int(announced) > self.max_body_bytes:
            await _refuse(send, self._too_large())
            return
        # Read the body here, up to the cap, and hand it to the app from memory.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect: nobody to answer
                return
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _refuse(send, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # later calls wait for http.disconnect
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self) -> MessageTooLargeError:
        return MessageTooLargeError(
            f"the request body is larger than {self.max_body_bytes} bytes, the limit: "
            "REST bodies are small JSON documents",
            details={"limit": self.max_body_bytes},
        )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _refuse(send: Send, error: NetgymError) -> None:
    """Answer with the error body, and close the connection: its body stays unread."""
    body = json.dumps({"error": error.to_dict()}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.http_status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
