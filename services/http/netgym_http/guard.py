"""Checks made on every request before any route runs: the token, the body's size.

Both services' REST APIs are guarded so.

FastAPI reads and parses a request's body before the route's dependencies run,
``require_token`` included, so without this middleware anyone who reaches the
port could make the service read (and hold in memory) a body of any size. This
pure ASGI middleware refuses a request without the token before reading a byte
of its body, and refuses a body above ``MAX_BODY_BYTES`` whether or not it
announces its length (a chunked body does not).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
from collections.abc import Callable

from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from netgym.errors import AuthenticationError, MessageTooLargeError, NetgymError
from netgym_http.errors import address, log_refused

log = logging.getLogger("netgym.http")

MAX_BODY_BYTES = 1 << 20  # REST bodies are small JSON documents
# A body too large is read off (and dropped) before the answer, up to this much
# and for this long: a client still sending it would get a reset connection, not
# the answer. A request without the token is answered at once, body unread.
DRAINED_BYTES = 64 << 20
DRAIN_TIMEOUT_S = 10.0


def token_matches(token: SecretStr | None, authorization: str | None) -> bool:
    """Whether ``Authorization: Bearer <token>`` carries ``token`` (or there is none)."""
    if token is None:
        return True
    expected = token.get_secret_value().encode()
    # RFC 9110: the scheme is case-insensitive, one or more spaces follow it.
    scheme, _, given = (authorization or "").strip(" \t").partition(" ")
    given = given.lstrip(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), expected)


class InsecureBindError(NetgymError):
    """The service would listen beyond loopback with no token."""

    code = "insecure_bind"


def check_bind(host: str, token: SecretStr | None, allowed: bool, prefix: str) -> None:
    """Refuse to listen beyond loopback without a token unless ``allowed`` explicitly.

    ``prefix``: the service's settings' (``NETGYM_``, ``NETGYM_EMULATOR_``).

    Raises:
        InsecureBindError: naming the settings that allow it.
    """
    if token is not None or allowed or _is_loopback(host):
        return
    raise InsecureBindError(
        f"refusing to listen on {host} without a token: set {prefix}TOKEN, or bind "
        f"127.0.0.1, or set {prefix}ALLOW_UNAUTHENTICATED_REMOTE_ACCESS=true if anyone who "
        "reaches this port may run environments here"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def blank_is_none(value: object) -> object:
    """A token setting as read: ``""`` (or spaces) means no token, not a token anyone
    can send. Spaces and line ends around it are dropped (a token read from a file
    ends in one), as HTTP drops them around the header that carries it."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if isinstance(raw, str):
        return raw.strip() or None
    return value


class RequestGuard:
    """ASGI middleware: the token for the paths ``guarded`` names, and a cap on body size.

    Args:
        token: what a guarded request must carry; None: nothing.
        guarded: whether a path needs the token.
        unauthorized: the message of a refusal, saying where the token comes from.
    """

    def __init__(
        self,
        app: ASGIApp,
        token: SecretStr | None,
        guarded: Callable[[str], bool],
        unauthorized: str,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.token = token
        self.guarded = guarded
        self.unauthorized = unauthorized
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        length = _header(scope, b"content-length")
        announced = int(length) if length is not None and length.isdigit() else None
        if self.guarded(path) and not token_matches(self.token, _header(scope, b"authorization")):
            await _answer(send, AuthenticationError(self.unauthorized), scope)
            return
        # A client that waits for "100 Continue" sends nothing more: answer at once.
        waits = (_header(scope, b"expect") or "").lower() == "100-continue"
        if announced is not None and announced > self.max_body_bytes:
            if waits or announced > DRAINED_BYTES:
                await _answer(send, self._too_large(), scope)
            else:
                await _refuse(receive, send, self._too_large(), scope)
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
                if message.get("more_body", False):
                    await _refuse(receive, send, self._too_large(), scope)
                else:
                    await _answer(send, self._too_large(), scope)
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


async def _refuse(receive: Receive, send: Send, error: NetgymError, scope: Scope) -> None:
    """Read off the rest of the request's body (kept nowhere; ``DRAINED_BYTES`` and
    ``DRAIN_TIMEOUT_S`` at most), then answer with the error and close the connection."""
    drained = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            while drained <= DRAINED_BYTES:
                message = await receive()
                if message["type"] != "http.request":  # http.disconnect: nobody to answer
                    return
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    break
    await _answer(send, error, scope)


async def _answer(send: Send, error: NetgymError, scope: Scope) -> None:
    """Answer with the error body, and close the connection."""
    client = address(*scope["client"]) if scope.get("client") else "?"
    log_refused(log, scope["method"], scope["path"], client, error.http_status, error.to_dict())
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
