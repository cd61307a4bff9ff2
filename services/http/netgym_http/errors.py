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

    @app.exception_handler(NetgymError)
    async def netgym_error(request: Request, exc: NetgymError) -> JSONResponse:
        # Only its client is told otherwise: with several, the operator could not
        # tell who was refused, or why.
        message = exc.message if len(exc.message) <= 300 else f"{exc.message[:300]}..."
        client = f"{request.client.host}:{request.client.port}" if request.client else "?"
        refused = exc.http_status < 500
        log.log(
            logging.INFO if refused else logging.WARNING,
            "%s %s from %s %s (%d %s): %s",
            request.method,
            request.url.path,
            client,
            "refused" if refused else "failed",
            exc.http_status,
            exc.code,
            message,
        )
        return _answer(exc.to_dict(), exc.http_status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # a body that is not JSON at all (invalid UTF-8, say)
            error = InvalidRequestError(
                f"{request.method} {request.url.path}: {exc.detail} ({_SEND_JSON})"
            )
            return _answer(error.to_dict(), error.http_status)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return _answer(_body(code, message), exc.status_code, exc.headers)

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
        return _answer(error.to_dict(), error.http_status)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        message = f"the {service} failed on {request.method} {request.url.path}: {exc!r}"
        return _answer(_body("internal", message), 500)
