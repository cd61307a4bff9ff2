"""GET /v1/health: proves the data port answers and a worker process can start."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from netgym.protocol import MessageType
from netgym.protocol.frames import HEADER_SIZE, expect, pack_header, unpack_header
from netgym_envapi.api.deps import DataPortDep, SessionsDep, SettingsDep
from netgym_envapi.catalog import emulator_status

router = APIRouter(tags=["health"])
EMULATOR_WAIT_S = 2.0


def probe_host(host: str) -> str:
    """The address that reaches a port bound on ``host``: loopback for the wildcards."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


ANSWER_LIMIT = 64 * 1024  # a PONG of 4 bytes, or an ERROR


async def ping_dataport(host: str, port: int) -> float:
    """One PING to the data port bound on ``host``; the round trip in milliseconds."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(probe_host(host), port)
    try:
        writer.write(pack_header(MessageType.PING, 4) + b"ping")
        await writer.drain()
        header = await reader.readexactly(HEADER_SIZE)
        message_type, length = unpack_header(header, ANSWER_LIMIT)
        body = await reader.readexactly(length)
        # An ERROR (limit_exceeded, say) raises what it says.
        if expect(message_type, bytearray(body), MessageType.PONG) != b"ping":
            raise RuntimeError(f"the data port answered PONG {body!r}")
    finally:
        writer.close()
    return (time.perf_counter() - started) * 1000


@router.get("/v1/health")
async def health(
    sessions: SessionsDep, dataport: DataPortDep, settings: SettingsDep
) -> JSONResponse:
    """200 when the service can serve; 503 with what failed otherwise.

    With an emulator service configured, ``checks.emulator`` says whether it
    answers; it does not make the envapi unhealthy, which still serves the rest.
    """
    checks: dict[str, Any] = {}
    healthy = True
    try:
        checks["data_port_ping_ms"] = round(
            await asyncio.wait_for(ping_dataport(settings.host, dataport.port), 5), 3
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
    # Informative only: without its emulator service the envapi still serves the rest.
    # Bounded, so that a hung emulator service cannot make this check time out.
    try:
        emulator = await asyncio.wait_for(asyncio.to_thread(emulator_status), EMULATOR_WAIT_S)
    except TimeoutError:
        emulator = f"unreachable: no answer within {EMULATOR_WAIT_S:g} s"
    if emulator is not None:
        checks["emulator"] = emulator
    body = {
        "status": "ok" if healthy else "failing",
        "sessions": len(sessions.live_sessions),
        "data_port": dataport.port,
        "checks": checks,
    }
    return JSONResponse(body, status_code=200 if healthy else 503)
