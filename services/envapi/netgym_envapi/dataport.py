"""The data port: a raw TCP listener that checks each HELLO and hands the socket on.

Stepping goes over raw TCP rather than WebSocket because a WebSocket through
uvicorn costs about twice as much per round trip (see docs/protocol.md). This
listener runs in the service's event loop but only ever reads one frame per
connection: after a good HELLO the socket belongs to the session's process.
Before HELLO it also answers PING, so that health checks and latency probes
need no session.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import socket
import time
from collections import Counter
from functools import partial
from typing import Any

from netgym.errors import (
    AuthenticationError,
    LimitExceededError,
    MessageTooLargeError,
    NetgymError,
    ProtocolError,
    ProtocolVersionError,
)
from netgym.protocol import PROTOCOL_VERSION, MessageType
from netgym.protocol.frames import HEADER_SIZE, pack_error, pack_header, unpack_header
from netgym.protocol.values import unpack_value
from netgym_envapi.sessions.manager import SessionManager
from netgym_envapi.settings import Settings

log = logging.getLogger("netgym.envapi.dataport")

HELLO_TIMEOUT_S = 10.0
HELLO_MAX_BYTES = 64 * 1024
# Connections waiting for their HELLO at once; more are refused straight away, so
# that bare connections cannot pile up (each holds a file descriptor for 10 s).
MAX_PENDING_HANDSHAKES = 256
# ...and from any one address but loopback (the health probe's), so that one
# peer cannot take every slot.
MAX_PENDING_PER_PEER = 32
# How long an ERROR to a refused connection may take to go out, with what the peer
# sent after it read and dropped (at most REFUSE_DRAIN_BYTES).
REFUSE_TIMEOUT_S = 1.0
REFUSE_DRAIN_BYTES = 1 << 22
# How long to pause accepting after accept() fails (out of file descriptors...).
ACCEPT_RETRY_S = 0.1
LOG_EVERY_S = 10.0  # a flood of refused connections logs one line of each kind per period


async def _recv_exact(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytearray:
    data = bytearray(size)
    view = memoryview(data)
    received = 0
    while received < size:
        count = await loop.sock_recv_into(sock, view[received:])
        if count == 0:
            raise ConnectionResetError("the client closed the connection")
        received += count
    return data


class DataPort:
    """The listening socket and its per-connection handshake."""

    def __init__(self, settings: Settings, sessions: SessionManager) -> None:
        self.settings = settings
        self.sessions = sessions
        self._listener: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._handshakes: set[asyncio.Task[None]] = set()
        self._pending_by_peer: Counter[str] = Counter()
        self._sparse = SparseLog()
        self.port = 0

    async def start(self) -> None:
        """Bind and start accepting."""
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        address = (self.settings.host, self.settings.data_port)
        try:
            listener.bind(address)
        except OSError as exc:
            listener.close()
            # uvicorn ends with this line: it must say which port, as its own does.
            raise OSError(
                exc.errno,
                f"cannot listen on the data port {address[0]}:{address[1]} ({exc.strerror}): "
                "is another envapi running? Set NETGYM_DATA_PORT (--data-port) to another port",
            ) from None
        listener.listen(128)
        listener.setblocking(False)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._task = asyncio.get_running_loop().create_task(self._accept_forever())

    async def stop(self) -> None:
        """Stop accepting; sessions already attached go on until ended."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._handshakes):
            task.cancel()
        if self._listener is not None:
            self._listener.close()

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._listener is not None
        while True:
            try:
                client, address = await loop.sock_accept(self._listener)
            except OSError as exc:
                # EMFILE, ENFILE, ECONNABORTED, ENOBUFS...: this connection is lost,
                # but the port must go on accepting the next ones.
                self._sparse.log(
                    logging.WARNING, "failed", f"accepting a data connection failed: {exc!r}"
                )
                await asyncio.sleep(ACCEPT_RETRY_S)
                continue
            peer = str(address[0])
            if len(self._handshakes) >= MAX_PENDING_HANDSHAKES:
                self._turn_away(client, f"{MAX_PENDING_HANDSHAKES} connections are", None)
                continue
            if not _is_loopback(peer) and self._pending_by_peer[peer] >= MAX_PENDING_PER_PEER:
                self._turn_away(client, f"{MAX_PENDING_PER_PEER} connections from {peer} are", peer)
                continue
            with contextlib.suppress(OSError):
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = loop.create_task(self._handshake(client))
            self._handshakes.add(task)
            self._pending_by_peer[peer] += 1
            task.add_done_callback(partial(self._handshake_done, peer))

    def _handshake_done(self, peer: str, task: asyncio.Task[None]) -> None:
        self._handshakes.discard(task)
        self._pending_by_peer[peer] -= 1
        if not self._pending_by_peer[peer]:
            del self._pending_by_peer[peer]

    def _turn_away(self, client: socket.socket, waiting: str, peer: str | None) -> None:
        """Refuse a connection at once: too many are already waiting for their HELLO."""
        self._sparse.log(
            logging.WARNING,
            "turned away",
            f"refused a data connection: {waiting} waiting for their HELLO",
        )
        error = LimitExceededError(
            f"{waiting} waiting for their HELLO on the data port, its limit; "
            "connect again in a moment",
            details={"peer": peer},
        )
        body = pack_error(error)
        with contextlib.suppress(OSError):
            client.setblocking(False)
            client.send(pack_header(MessageType.ERROR, len(body)) + body)
        client.close()

    async def _handshake(self, client: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(HELLO_TIMEOUT_S):
                while True:
                    header = await _recv_exact(loop, client, HEADER_SIZE)
                    try:
                        message_type, length = unpack_header(header, HELLO_MAX_BYTES)
                    except MessageTooLargeError as exc:
                        raise MessageTooLargeError(
                            f"{exc.details['length']} bytes: a frame before HELLO, HELLO "
                            f"included, is at most {HELLO_MAX_BYTES} bytes",
                            details=exc.details,
                        ) from None
                    body = await _recv_exact(loop, client, length)
                    if message_type == MessageType.PING:
                        await loop.sock_sendall(
                            client, pack_header(MessageType.PONG, length) + body
                        )
                        continue
                    if message_type != MessageType.HELLO:
                        raise ProtocolError(
                            "the first message on the data port must be HELLO, "
                            f"not {message_type.name}"
                        )
                    self._attach(client, unpack_value(body))
                    return
        except NetgymError as exc:
            await self._refuse(client, exc)
        except TimeoutError:
            await self._refuse(client, ProtocolError(f"no HELLO within {HELLO_TIMEOUT_S:g} s"))
        except OSError:
            pass
        except Exception as exc:  # a bug: this client is refused, the port goes on
            log.exception("a HELLO could not be handled")
            with contextlib.suppress(Exception):
                await self._refuse(client, NetgymError(f"the envapi failed on HELLO: {exc!r}"))
        finally:
            client.close()

    def _attach(self, client: socket.socket, hello: Any) -> None:
        if not isinstance(hello, dict):
            raise ProtocolError(f"a HELLO body is a dict, got {type(hello).__name__}")
        version = hello.get("protocol")
        if "protocol" not in hello:
            raise ProtocolError(
                f'HELLO has no "protocol": send {{"protocol": {PROTOCOL_VERSION}, "session_id", '
                '"token"}'
            )
        if type(version) is not int or version != PROTOCOL_VERSION:  # true and 1.0 are no 1
            raise ProtocolVersionError(
                f"the client speaks protocol {version!r}, this server speaks {PROTOCOL_VERSION}; "
                "install a netgym client of the same major version",
                details={"server": PROTOCOL_VERSION, "client": version},
            )
        expected = self.settings.token
        if expected is not None:
            given = hello.get("token")
            if not isinstance(given, str) or not hmac.compare_digest(
                given.strip().encode(errors="surrogatepass"),
                expected.get_secret_value().encode(),
            ):
                raise AuthenticationError(
                    "wrong or missing token in HELLO: pass token=... or set NETGYM_TOKEN"
                )
        session_id = hello.get("session_id")
        if session_id is None:
            raise ProtocolError(
                "HELLO has no session_id: open a session with POST /v1/sessions first"
            )
        if not isinstance(session_id, str):
            raise ProtocolError(
                f"HELLO's session_id is {session_id!r}: send the string POST /v1/sessions gave"
            )
        self.sessions.attach(session_id, client)
        client.close()  # the session process holds its own copy now

    async def _refuse(self, client: socket.socket, error: NetgymError) -> None:
        self._sparse.log(
            logging.INFO, f"refused as {error.code}", f"refused a data connection: {error.message}"
        )
        body = pack_error(error)
        # A peer that reads nothing must not hold this connection (and its slot) for ever.
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(REFUSE_TIMEOUT_S):
                await loop.sock_sendall(client, pack_header(MessageType.ERROR, len(body)) + body)
                # Closed with bytes unread, the connection would be reset, and the
                # peer could lose the ERROR: what it sent is read and dropped first.
                client.shutdown(socket.SHUT_WR)
                dropped = 0
                while dropped < REFUSE_DRAIN_BYTES:
                    chunk = await loop.sock_recv(client, 65536)
                    if not chunk:
                        break
                    dropped += len(chunk)


class SparseLog:
    """Logs each kind of event at most once per ``period_s``, with how many of that
    kind it left out (their messages may differ): a flood of bad connections must
    not flood the log too."""

    def __init__(self, period_s: float = LOG_EVERY_S) -> None:
        self.period_s = period_s
        self._logged_at: dict[str, float] = {}
        self._left_out: Counter[str] = Counter()

    def log(self, level: int, kind: str, message: str) -> None:
        now = time.monotonic()
        last = self._logged_at.get(kind)
        if last is not None and now - last < self.period_s:
            self._left_out[kind] += 1
            return
        self._logged_at[kind] = now
        left_out = self._left_out.pop(kind, 0)
        if left_out and last is not None:
            message += f" (and {left_out} more {kind} in {now - last:.0f} s)"
        log.log(level, "%s", message)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False
