"""GET /v1/health: proves the data port answers and a worker process can start."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from netgym.protocol import MessageType
from netgym.protocol.frames import HEADER_SIZE, pack_header, unpack_header
from netgym_envapi.api.deps import DataPortDep, SessionsDep

router = APIRouter(tags=["health"])


async def _ping_dataport(port: int) -> float:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(pack_header(MessageType.PING, 4) + b"ping")
        await writer.drain()
        header = await reader.readexactly(HEADER_SIZE)
        message_type, length = unpack_header(header, 64)
        body = await reader.readexactly(length)
        if message_type != MessageType.PONG or body != b"ping":
            raise RuntimeError(f"the data port answered {message_type.name} {body!r}")
    finally:
        writer.close()
    return (time.perf_counter() - started) * 1000


@router.get("/v1/health")
async def health(sessions: SessionsDep, dataport: DataPortDep) -> JSONResponse:
    """200 when the service can serve; 503 with what failed otherwise."""
    checks: dict[str, Any] = {}
    healthy = True
    try:
        checks["data_port_ping_ms"] = round(
            await asyncio.wait_for(_ping_dataport(dataport.port), 5), 3
        )
    except Exception as exc:
        checks["data_port"] = f"failed: {exc!r}"
        healthy = False
    try:
        await asyncio.wait_for(sessions.check_workers(), 15)
        checks["workers"] = "ok"
    except Exception as exc:
        checks["workers"] = f"failed: {exc!r}"
        healthy = False
    body = {
        "status": "ok" if healthy else "failing",
        "sessions": len(sessions.live_sessions),
        "data_port": dataport.port,
        "checks": checks,
    }
    return JSONResponse(body, status_code=200 if healthy else 503)
