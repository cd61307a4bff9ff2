"""Every REST failure of a netgym service as ``{"error": {"code", "message", "details"}}``.

The client library's ``RestClient`` turns that body back into the typed
exception (``netgym.errors.error_from_dict``), whichever service answered and
whatever went wrong: a ``NetgymError`` raised by a route, a body that does
not validate, an unknown path or method, or a bug.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from netgym.errors import InvalidRequestError, NetgymError

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}
_SEND_JSON = "send the body as JSON in UTF-8, with Content-Type: application/json"


def client_address(request: Request) -> str:
    """Where a request came from, as logs name it: host:port ([host]:port for IPv6),
    or ? when the server does not know."""
    return address(request.client.host, request.client.port) if request.client else "?"


def address(host: str, port: int) -> str:
    """``host:port``, or ``[host]:port`` for an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def log_refused(
    log: logging.Logger, method: str, path: str, client: str, status: int, error: dict[str, Any]
) -> None:
    """One line for a request answered with an error: only its client is told
    otherwise, and with several clients the operator could not tell who was
    refused, or why."""
    message = str(error.get("message", ""))
    if len(message) > 300:
        message = f"{message[:300]}..."
    refused = status < 500
    log.log(
        logging.INFO if refused else logging.WARNING,
        "%s %s from %s %s (%d %s): %s",
        method,
        path,
        client,
        "refused" if refused else "failed",
        status,
        error.get("code"),
        message,
    )


def _body(code: str, message: str) -> dict[str, object]:
    return {"code": code, "message": message, "details": {}}


def _answer(
    error: dict[str, Any], status_code: int, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The error body; where JSON cannot carry what the error quotes of a request (a
    float such as 1e999, which Python reads as inf, or a lone surrogate), without
    its details and with the message's unencodable characters escaped."""
    try:
        return JSONResponse({"error": error}, status_code=status_code, headers=headers)
    except ValueError:  # UnicodeEncodeError included
        message = str(error["message"]).encode("utf-8", "backslashreplace").decode()
        plain = {**error, "message": message, "details": {}}
        return JSONResponse({"error": plain}, status_code=status_code, headers=headers)


def install_error_handlers(app: FastAPI, service: str, log: logging.Logger) -> None:
    """Answer every error of ``app`` with netgym's error body; ``service`` names it in messages."""

    def answer(
        request: Request,
        error: dict[str, Any],
        status: int,
        headers: Mapping[str, str] | None = None,
    ) -> JSONResponse:
        log_refused(log, request.method, request.url.path, client_address(request), status, error)
        return _answer(error, status, headers)

    @app.exception_handler(NetgymError)
    async def netgym_error(request: Request, exc: NetgymError) -> JSONResponse:
        return answer(request, exc.to_dict(), exc.http_status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # a body that is not JSON at all (invalid UTF-8, say)
            error = InvalidRequestError(
                f"{request.method} {request.url.path}: {exc.detail} ({_SEND_JSON})"
            )
            return answer(request, error.to_dict(), error.http_status)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return answer(request, _body(code, message), exc.status_code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # An error's "input" may be anything the client sent, bytes included: not JSON.
        errors = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        problems = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        if "json" not in request.headers.get("content-type", ""):
            problems += f" ({_SEND_JSON})"
        error = InvalidRequestError(f"invalid request: {problems}", details={"errors": errors})
        return answer(request, error.to_dict(), error.http_status)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        message = f"the {service} failed on {request.method} {request.url.path}: {exc!r}"
        return _answer(_body("internal", message), 500)
