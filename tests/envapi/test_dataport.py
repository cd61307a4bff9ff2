"""The data port's listener, in process: it keeps accepting whatever happens to one connection."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections.abc import Awaitable, Callable

import pytest

from netgym.errors import (
    AuthenticationError,
    LimitExceededError,
    MessageTooLargeError,
    NetgymError,
)
from netgym.protocol import PROTOCOL_VERSION, MessageType, pack_value
from netgym.protocol.frames import HEADER_SIZE, pack_header, unpack_error, unpack_header
from netgym_envapi import dataport
from netgym_envapi.api.health import ping_dataport, probe_host
from netgym_envapi.dataport import DataPort, SparseLog
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


async def refusal_after_bare_connections(port: DataPort, count: int) -> NetgymError:
    """Open ``count`` connections that send nothing, then one more: the ERROR it gets.

    That one is closed after its ERROR; the bare ones are closed before this returns.
    """
    bare = [await asyncio.open_connection("127.0.0.1", port.port) for _ in range(count)]
    await asyncio.sleep(0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", port.port)
    message_type, body = await asyncio.wait_for(read_frame(reader), 5)
    assert message_type == MessageType.ERROR
    assert await reader.read() == b""
    writer.close()
    for _, bare_writer in bare:
        bare_writer.close()
    await asyncio.sleep(0.2)
    return unpack_error(body)


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
        error = await refusal_after_bare_connections(port, 2)
        assert isinstance(error, LimitExceededError) and "waiting for their HELLO" in error.message
        assert await ping(port.port) == b"ping"
        # The health check's ping says so too (it read the ERROR as too large a frame).
        bare = [await asyncio.open_connection("127.0.0.1", port.port) for _ in range(2)]
        await asyncio.sleep(0.2)
        with pytest.raises(LimitExceededError, match="waiting for their HELLO"):
            await ping_dataport("127.0.0.1", port.port)
        for _, writer in bare:
            writer.close()

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


def test_a_peer_that_reads_nothing_frees_its_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    """PINGs never read fill the buffers; the refusal must not wait on them for ever."""
    monkeypatch.setattr(dataport, "HELLO_TIMEOUT_S", 0.5)
    monkeypatch.setattr(dataport, "REFUSE_TIMEOUT_S", 0.5)

    async def scenario(port: DataPort) -> None:
        sock = socket.create_connection(("127.0.0.1", port.port))
        sock.setblocking(False)
        ping = pack_header(MessageType.PING, 60_000) + bytes(60_000)
        with contextlib.suppress(BlockingIOError):
            for _ in range(1000):  # until both ends' buffers are full
                sock.send(ping)
                await asyncio.sleep(0)
        deadline = time.monotonic() + 10  # the two 0.5 s timeouts, on a busy machine
        while port._handshakes:
            assert time.monotonic() < deadline, "the stuck handshake was not dropped"
            await asyncio.sleep(0.1)
        sock.close()

    run_with_dataport(scenario)


def test_one_peer_cannot_take_every_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataport, "MAX_PENDING_PER_PEER", 2)
    monkeypatch.setattr(dataport, "_is_loopback", lambda address: False)

    async def scenario(port: DataPort) -> None:
        error = await refusal_after_bare_connections(port, 2)
        assert isinstance(error, LimitExceededError)
        assert "2 connections from 127.0.0.1 are waiting for their HELLO" in error.message
        assert not port._pending_by_peer
        assert await ping(port.port) == b"ping"

    run_with_dataport(scenario)


def test_a_token_that_is_no_text_is_a_wrong_token() -> None:
    async def main() -> None:
        port = DataPort(Settings(host="127.0.0.1", data_port=0, token="secret"), sessions=None)
        await port.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port.port)
            hello = pack_value({"protocol": PROTOCOL_VERSION, "token": "\ud800", "session_id": "x"})
            writer.write(pack_header(MessageType.HELLO, len(hello)) + hello)
            message_type, body = await asyncio.wait_for(read_frame(reader), 5)
            assert message_type == MessageType.ERROR
            assert isinstance(unpack_error(body), AuthenticationError)
            writer.close()
        finally:
            await port.stop()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("hello", "message"),
    [
        ({"session_id": "x"}, 'HELLO has no "protocol": send {"protocol": 1,'),
        ({"protocol": PROTOCOL_VERSION, "session_id": 5}, "HELLO's session_id is 5: send the"),
        ({"protocol": PROTOCOL_VERSION}, "HELLO has no session_id: open a session"),
    ],
    ids=["no-protocol", "session-id-not-text", "no-session-id"],
)
def test_a_malformed_hello_says_what_is_wrong(hello: dict[str, object], message: str) -> None:
    async def scenario(port: DataPort) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port.port)
        body = pack_value(hello)
        writer.write(pack_header(MessageType.HELLO, len(body)) + body)
        message_type, reply = await asyncio.wait_for(read_frame(reader), 5)
        assert message_type == MessageType.ERROR
        assert unpack_error(reply).message.startswith(message), unpack_error(reply).message
        writer.close()

    run_with_dataport(scenario)


def test_a_frame_too_large_before_hello_is_refused_with_an_error_the_peer_gets() -> None:
    """The peer's unread bytes are drained, so closing does not reset the ERROR away."""

    async def scenario(port: DataPort) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port.port)
        writer.write(pack_header(MessageType.HELLO, 1 << 20) + bytes(200_000))
        message_type, body = await asyncio.wait_for(read_frame(reader), 5)
        assert message_type == MessageType.ERROR
        error = unpack_error(body)
        assert isinstance(error, MessageTooLargeError)
        assert "a frame before HELLO, HELLO included, is at most 65536 bytes" in error.message
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, not reset
        writer.close()

    run_with_dataport(scenario)


def test_a_flood_of_refusals_logs_one_line_of_each_kind_per_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sparse = SparseLog(period_s=2.0)  # the first calls come well within it
    with caplog.at_level(logging.INFO, logger="netgym.envapi.dataport"):
        for what in ["no HELLO", *["a bad frame"] * 4]:  # of one kind, with their own messages
            sparse.log(logging.INFO, "refused as protocol", f"refused a data connection: {what}")
        sparse.log(logging.WARNING, "failed", "accepting a data connection failed")
        time.sleep(2.05)
        sparse.log(logging.INFO, "refused as protocol", "refused a data connection: no HELLO")
    lines = [record.getMessage() for record in caplog.records]
    assert lines[:2] == [
        "refused a data connection: no HELLO",
        "accepting a data connection failed",
    ]
    assert lines[2].startswith(
        "refused a data connection: no HELLO (and 4 more refused as protocol in "
    )
    assert len(lines) == 3
