"""Every REST failure of a netgym service as ``{"error": {"code", "message", "details"}}``.

The client library's ``RestClient`` turns that body back into the typed
exception (``netgym.errors.error_from_dict``), whichever service answered and
whatever went wrong: a ``NetgymError`` raised by a route, a body that does
not validate, an unknown path or method, or a bug.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from netgym.errors import InvalidRequestError, NetgymError

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}
_SEND_JSON = "send the body as JSON in UTF-8, with Content-Type: application/json"


def _body(code: str, message: str) -> dict[str, dict[str, object]]:
    return {"error": {"code": code, "message": message, "details": {}}}


def install_error_handlers(app: FastAPI, service: str, log: logging.Logger) -> None:
    """Answer every error of ``app`` with netgym's error body; ``service`` names it in messages."""

    @app.exception_handler(NetgymError)
    async def netgym_error(request: Request, exc: NetgymError) -> JSONResponse:
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # a body that is not JSON at all (invalid UTF-8, say)
            error = InvalidRequestError(
                f"{request.method} {request.url.path}: {exc.detail} ({_SEND_JSON})"
            )
            return JSONResponse({"error": error.to_dict()}, status_code=error.http_status)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return JSONResponse(_body(code, message), status_code=exc.status_code, headers=exc.headers)

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
        return JSONResponse({"error": error.to_dict()}, status_code=error.http_status)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        message = f"the {service} failed on {request.method} {request.url.path}: {exc!r}"
        return JSONResponse(_body("internal", message), status_code=500)
