"""The client end of a session's data connection: HELLO, then RESET/STEP frames."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import numpy as np

from netgym.errors import ConnectionLostError, ProtocolError
from netgym.protocol import PROTOCOL_VERSION, MessageType, ResultLayout
from netgym.protocol.frames import (
    Buffer,
    expect,
    recv_exact_into,
    recv_frame,
    recv_header,
    send_frame,
    send_value,
    unpack_error,
)
from netgym.protocol.results import StepArrays
from netgym.protocol.values import pack_value, unpack_value


class DataConnection:
    """One TCP connection to a session process, in lockstep."""

    def __init__(
        self, host: str, port: int, session_id: str, token: str | None, timeout_s: float
    ) -> None:
        self.timeout_s = timeout_s
        try:
            self.sock = socket.create_connection((host, port), timeout=min(timeout_s, 30.0))
        except OSError as exc:
            raise ConnectionLostError(
                f"cannot connect to the envapi's data port {host}:{port} ({exc}); "
                "if the envapi runs behind Docker or a proxy, publish that port too"
            ) from None
        self.max_message_bytes = 1 << 31
        try:
            with self._socket_errors():
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.sock.settimeout(timeout_s)
                send_value(
                    self.sock,
                    MessageType.HELLO,
                    {"protocol": PROTOCOL_VERSION, "session_id": session_id, "token": token},
                )
            self.welcome: dict[str, Any] = unpack_value(self._expect(MessageType.WELCOME))
        except BaseException:
            self.sock.close()  # refused (an ERROR), or broken: nothing will use it
            raise

    @property
    def closed(self) -> bool:
        """Whether the socket is closed (by ``close``, ``abort`` or a lost connection)."""
        return self.sock.fileno() == -1

    def abort(self) -> None:
        """Close the socket without a word: the stream is broken or out of step."""
        self.sock.close()

    @contextlib.contextmanager
    def _socket_errors(self) -> Iterator[None]:
        """Turn a timeout or a broken socket into ConnectionLostError."""
        try:
            yield
        except TimeoutError:
            raise ConnectionLostError(
                f"the envapi sent no reply within {self.timeout_s:g} s (timeout_s)"
            ) from None
        except OSError as exc:
            raise ConnectionLostError(f"the data connection broke: {exc}") from None

    def _expect(self, wanted: MessageType) -> bytearray:
        with self._socket_errors():
            message_type, body = recv_frame(self.sock, self.max_message_bytes)
        return expect(message_type, body, wanted)

    def send(self, message_type: MessageType, parts: list[Buffer]) -> None:
        """Send one frame."""
        with self._socket_errors():
            send_frame(self.sock, message_type, parts)

    def reset(
        self, seed: Any, options: dict[str, Any] | None, layout: ResultLayout
    ) -> tuple[list[np.ndarray], Any]:
        """Send RESET; return the observation leaves and the info."""
        self.send(MessageType.RESET, [pack_value({"seed": seed, "options": options})])
        body = self._expect(MessageType.RESET_RESULT)
        if len(body) < layout.reset_nbytes:
            raise ProtocolError(
                f"a RESET_RESULT of {len(body)} bytes is shorter than its observations"
            )
        leaves = [leaf.copy() for leaf in layout.observations.views(body)]
        return leaves, unpack_value(memoryview(body)[layout.reset_nbytes :])

    def receive_step(self, layout: ResultLayout) -> tuple[StepArrays, Any]:
        """Read a STEP_RESULT into a fresh buffer; the arrays are views of it."""
        with self._socket_errors():
            message_type, length = recv_header(self.sock, self.max_message_bytes)
            buffer = np.empty(length, dtype=np.uint8)
            recv_exact_into(self.sock, buffer.data)
        if message_type == MessageType.ERROR:
            raise unpack_error(buffer.data)
        if message_type != MessageType.STEP_RESULT or length < layout.step_nbytes:
            raise ProtocolError(
                f"expected a STEP_RESULT, got {message_type.name} of {length} bytes"
            )
        arrays = layout.step_views(buffer)
        return arrays, unpack_value(buffer.data[layout.step_nbytes :], copy=False)

    def ping(self, payload: bytes = b"") -> None:
        """One empty round trip."""
        self.send(MessageType.PING, [payload])
        self._expect(MessageType.PONG)

    def close(self) -> bool:
        """Say CLOSE and close the socket; True when the server confirmed with CLOSED."""
        try:
            self.sock.settimeout(2.0)
            send_frame(self.sock, MessageType.CLOSE)
            return recv_frame(self.sock, 1 << 20)[0] == MessageType.CLOSED
        except (OSError, ConnectionLostError, ProtocolError):
            return False
        finally:
            self.sock.close()
