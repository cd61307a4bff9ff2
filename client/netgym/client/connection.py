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
    FrameReader,
    expect,
    send_frame,
    send_value,
    unpack_error,
)
from netgym.protocol.results import StepArrays
from netgym.protocol.sharedmemory import HEADER_BYTES, open_results_file
from netgym.protocol.values import pack_value, unpack_value


class DataConnection:
    """One TCP connection to a session process, in lockstep."""

    def __init__(
        self,
        host: str,
        port: int,
        session_id: str,
        token: str | None,
        timeout_s: float,
        shared_memory: bool = True,
    ) -> None:
        self.timeout_s = timeout_s
        # The session's results file, mapped (a client on the session's host).
        self.shared_results: np.ndarray | None = None
        try:
            self.sock = socket.create_connection((host, port), timeout=min(timeout_s, 30.0))
        except OSError as exc:
            raise ConnectionLostError(
                f"cannot connect to the envapi's data port {host}:{port} ({exc}); "
                "if the envapi runs behind Docker or a proxy, publish that port too"
            ) from None
        self.max_message_bytes = 1 << 31
        self.reader = FrameReader(self.sock, self.max_message_bytes)
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
            if shared_memory:
                self._share(self.welcome.get("shared_memory"))
        except BaseException:
            self.sock.close()  # refused (an ERROR), or broken: nothing will use it
            raise

    def _share(self, offer: Any) -> None:
        """Take the session's offer of shared memory when this process can map its file."""
        if not isinstance(offer, dict):
            return
        path, token, nbytes = offer.get("path"), offer.get("token"), offer.get("nbytes")
        if not (isinstance(path, str) and isinstance(token, str) and isinstance(nbytes, int)):
            return
        memory = open_results_file(path, token, nbytes)
        if memory is None:  # another host, or another user: results come in frames
            return
        self.send(MessageType.SHARE, [pack_value({"token": token})])
        self._expect(MessageType.SHARED)
        self.shared_results = np.frombuffer(memory, np.uint8, nbytes, HEADER_BYTES)

    @property
    def closed(self) -> bool:
        """Whether the socket is closed (by ``close``, ``abort`` or a lost connection)."""
        return self.sock.fileno() == -1

    def set_timeout(self, timeout_s: float) -> None:
        """Wait this long for any one reply from now on."""
        self.timeout_s = timeout_s
        self.sock.settimeout(timeout_s)

    def shutdown(self) -> None:
        """Wake a thread blocked on this connection: its read or write fails at once."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def abort(self) -> None:
        """Close the socket without a word: the stream is broken or out of step."""
        self.sock.close()
        self.shared_results = None

    @contextlib.contextmanager
    def _socket_errors(self) -> Iterator[None]:
        """Turn a timeout, a broken socket or a garbled frame into ConnectionLostError.

        After any of them the stream cannot be trusted to be in step.
        """
        try:
            yield
        except ProtocolError as exc:
            raise ConnectionLostError(f"the data stream is broken: {exc.message}") from None
        except TimeoutError:
            raise ConnectionLostError(
                f"the envapi sent no reply within {self.timeout_s:g} s (timeout_s)",
                details={"timed_out": True},
            ) from None
        except OSError as exc:
            raise ConnectionLostError(f"the data connection broke: {exc}") from None

    def _expect(self, wanted: MessageType) -> bytearray:
        with self._socket_errors():
            message_type, body = self.reader.frame()
        if message_type not in (wanted, MessageType.ERROR):
            raise _out_of_step(wanted, message_type)
        return expect(message_type, body, wanted)

    def send(self, message_type: MessageType, parts: list[Buffer]) -> None:
        """Send one frame."""
        with self._socket_errors():
            send_frame(self.sock, message_type, parts)

    def send_prepared(self, frame: bytearray) -> None:
        """Send a whole frame as it is (one ``frame_buffer`` made, its body filled in since)."""
        with self._socket_errors():
            self.sock.sendall(frame)

    def reset(
        self, seed: Any, options: dict[str, Any] | None, layout: ResultLayout
    ) -> tuple[list[np.ndarray], Any]:
        """Send RESET; return the observation leaves and the info."""
        self.send(MessageType.RESET, [pack_value({"seed": seed, "options": options})])
        body = self._expect(MessageType.RESET_RESULT)
        if self.shared_results is not None:
            observations = self._shared_view(layout)[: layout.reset_nbytes]
            leaves = [leaf.copy() for leaf in layout.observations.views(observations)]
            return leaves, unpack_value(body)
        if len(body) < layout.reset_nbytes:
            raise ConnectionLostError(
                f"the data stream is broken: a RESET_RESULT of {len(body)} bytes is shorter "
                f"than the {layout.reset_nbytes} of its observations"
            )
        leaves = [leaf.copy() for leaf in layout.observations.views(body)]
        return leaves, unpack_value(memoryview(body)[layout.reset_nbytes :])

    def receive_step(self, layout: ResultLayout) -> tuple[StepArrays, Any]:
        """Read a STEP_RESULT into a fresh buffer; the arrays are views of it."""
        shared = self.shared_results is not None
        with self._socket_errors():
            message_type, length = self.reader.header()
            # Shared: the frame holds the info only, after results read from memory.
            start = layout.step_nbytes if shared else 0
            buffer = np.empty(start + length, dtype=np.uint8)
            self.reader.body_into(buffer.data[start:])
        if message_type == MessageType.ERROR:
            raise unpack_error(buffer.data[start:])
        if shared and message_type == MessageType.STEP_RESULT:
            buffer[:start] = self._shared_view(layout)
            length = len(buffer)
        if message_type != MessageType.STEP_RESULT:
            raise _out_of_step(MessageType.STEP_RESULT, message_type)
        if length < layout.step_nbytes:
            raise ConnectionLostError(
                f"the data stream is broken: a STEP_RESULT of {length} bytes is shorter "
                f"than the {layout.step_nbytes} of its results"
            )
        arrays = layout.step_views(buffer)
        return arrays, unpack_value(buffer.data[layout.step_nbytes :], copy=False)

    def _shared_view(self, layout: ResultLayout) -> np.ndarray:
        """The results in shared memory (valid until the next request)."""
        assert self.shared_results is not None
        if len(self.shared_results) < layout.step_nbytes:
            raise ConnectionLostError(
                f"the data stream is broken: the session's shared memory has "
                f"{len(self.shared_results)} bytes, fewer than the {layout.step_nbytes} of "
                "its results"
            )
        return self.shared_results[: layout.step_nbytes]

    def ping(self, payload: bytes = b"") -> None:
        """One empty round trip."""
        self.send(MessageType.PING, [payload])
        self._expect(MessageType.PONG)

    def close(self) -> bool:
        """Say CLOSE and close the socket; True when the server confirmed with CLOSED."""
        try:
            self.sock.settimeout(2.0)
            send_frame(self.sock, MessageType.CLOSE)
            return self.reader.frame()[0] == MessageType.CLOSED
        except (OSError, ConnectionLostError, ProtocolError):
            return False
        finally:
            self.sock.close()
            self.shared_results = None  # unmapped once the last view of it is gone


def _out_of_step(wanted: MessageType, got: MessageType) -> ConnectionLostError:
    return ConnectionLostError(
        f"the data stream is out of step: expected {wanted.name}, got {got.name}"
    )
