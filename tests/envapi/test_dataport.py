"""The data port's listener, in process: it keeps accepting whatever happens to one connection."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Awaitable, Callable

import pytest

from netgym.errors import LimitExceededError
from netgym.protocol import MessageType
from netgym.protocol.frames import HEADER_SIZE, pack_header, unpack_error, unpack_header
from netgym_envapi import dataport
from netgym_envapi.api.health import ping_dataport, probe_host
from netgym_envapi.dataport import DataPort
from netgym_envapi.settings import Settings


async def read_frame(reader: asyncio.StreamReader) -> tuple[MessageType, bytes]:
    message_type, length = unpack_header(await reader.readexactly(HEADER_SIZE), 1 << 20)
    return message_type, await reader.readexactly(length)


async def ping(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(pack_header(MessageType.PING, 4) + b"ping")
        message_type, body = await asyncio.wait_for(read_frame(reader), 5)
        assert message_type == MessageType.PONG
        return body
    finally:
        writer.close()


def run_with_dataport(scenario: Callable[[DataPort], Awaitable[None]]) -> None:
    async def main() -> None:
        port = DataPort(Settings(host="127.0.0.1", data_port=0), sessions=None)
        await port.start()
        try:
            await scenario(port)
        finally:
            await port.stop()

    asyncio.run(main())


def test_accept_goes_on_after_accept_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    failures = [
        OSError(errno.EMFILE, "Too many open files"),
        ConnectionAbortedError(errno.ECONNABORTED, "Software caused connection abort"),
    ]

    async def scenario(port: DataPort) -> None:
        loop = asyncio.get_running_loop()
        real_accept = loop.sock_accept

        async def flaky_accept(sock: object) -> object:
            if failures:
                raise failures.pop(0)
            return await real_accept(sock)

        monkeypatch.setattr(loop, "sock_accept", flaky_accept)
        assert await ping(port.port) == b"ping"
        assert not failures

    run_with_dataport(scenario)


def test_bare_connections_beyond_the_limit_are_turned_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dataport, "MAX_PENDING_HANDSHAKES", 2)

    async def scenario(port: DataPort) -> None:
        bare = [await asyncio.open_connection("127.0.0.1", port.port) for _ in range(2)]
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", port.port)
        message_type, body = await asyncio.wait_for(read_frame(reader), 5)
        assert message_type == MessageType.ERROR
        error = unpack_error(body)
        assert isinstance(error, LimitExceededError) and "waiting for their HELLO" in error.message
        assert await reader.read() == b""
        writer.close()
        for _, bare_writer in bare:
            bare_writer.close()
        await asyncio.sleep(0.2)
        assert await ping(port.port) == b"ping"

    run_with_dataport(scenario)


@pytest.mark.parametrize(
    ("host", "probe"),
    [("0.0.0.0", "127.0.0.1"), ("::", "::1"), ("127.0.0.2", "127.0.0.2"), ("::1", "::1")],
)
def test_health_pings_the_address_the_port_is_bound_to(host: str, probe: str) -> None:
    assert probe_host(host) == probe


def test_health_ping_reaches_a_port_bound_beyond_127_0_0_1() -> None:
    async def main() -> None:
        settings = Settings(host="127.0.0.2", data_port=0)
        port = DataPort(settings, sessions=None)
        await port.start()
        try:
            assert await ping_dataport(settings.host, port.port) > 0
        finally:
            await port.stop()

    asyncio.run(main())
