"""A REST connection must send its whole request in time; a slow answer may take long."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI

from netgym_http.timely import timely_http

TIMEOUT_S = 1.0  # for a request to come in; the tests send theirs within it, on a busy machine too


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(3 * TIMEOUT_S)  # longer than a request may take to arrive
        return {"ok": "slow"}

    @app.post("/echo")
    async def echo(body: dict[str, str]) -> dict[str, str]:
        return body

    listening = socket.socket()  # bound here, so no other process can take its port
    listening.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", http=timely_http(TIMEOUT_S)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield listening.getsockname()[1]
    server.should_exit = True
    thread.join(10)
    listening.close()


def receive_until(connection: socket.socket, expected: bytes) -> bytes:
    """What the server sends until ``expected`` is among it; it must not close before."""
    reply = b""
    while expected not in reply:
        chunk = connection.recv(4096)
        assert chunk, f"closed before {expected!r} came: {reply!r}"
        reply += chunk
    return reply


def closed_after(connection: socket.socket) -> float:
    """Seconds until the server closes ``connection`` (at most 10)."""
    start = time.monotonic()
    connection.settimeout(10)
    while connection.recv(4096):
        pass
    return time.monotonic() - start


@pytest.mark.parametrize(
    "sent",
    [
        b"",  # a connection that says nothing
        b"GET /slow HTTP/1.1\r\nHost: x\r\n",  # half a header
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",  # half a body
    ],
    ids=["nothing", "half-header", "half-body"],
)
def test_a_request_that_does_not_all_come_in_time_is_cut_off(port: int, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(sent)
        assert closed_after(connection) < 3 * TIMEOUT_S + 1


def test_a_request_that_came_may_take_longer_and_the_next_one_gets_its_time(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.settimeout(10)
        connection.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = receive_until(connection, b'{"ok":"slow"}')
        assert reply.startswith(b"HTTP/1.1 200")
        body = b'{"a":"b"}'  # on the same connection, kept alive
        connection.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        reply = receive_until(connection, body)
        assert reply.startswith(b"HTTP/1.1 200")
