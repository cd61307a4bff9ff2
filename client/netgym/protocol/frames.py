"""Frames on the binary channel: an 8-byte header, then the body.

Header (docs/protocol.md, "Frames")::

    u32 LE  body length in bytes (the header's 8 bytes not counted)
    u8      message type (``MessageType``)
    3 bytes zero

Every body is either raw array bytes laid out by a ``BatchLayout`` or a value
from ``netgym.protocol.values``. Decoding happens here and only here: an ERROR
frame becomes the typed exception it names in ``unpack_error``.
"""

from __future__ import annotations

import enum
import socket
import struct
from collections.abc import Sequence
from typing import Any

from netgym.errors import (
    ConnectionLostError,
    MessageTooLargeError,
    NetgymError,
    ProtocolError,
    error_from_dict,
)
from netgym.protocol.values import pack_value, unpack_value

PROTOCOL_VERSION = 1
HEADER = struct.Struct("<IB3x")
HEADER_SIZE = HEADER.size
_HEADER_FIELDS = struct.Struct("<IBBH")  # the 3 reserved bytes too, to check them
_JOIN_BYTES = 1 << 14  # a body this small is copied after its header, for one plain send

Buffer = bytes | bytearray | memoryview


class MessageType(enum.IntEnum):
    """The kind of a frame; the comment says who sends it."""

    HELLO = 1  # client: {"protocol", "session_id", "token"}
    WELCOME = 2  # server: {"protocol", "session_id", "num_envs", spaces, "autoreset_mode"}
    RESET = 3  # client: {"seed", "options"}
    RESET_RESULT = 4  # server: observations, then info
    STEP = 5  # client: actions
    STEP_RESULT = 6  # server: observations, rewards, terminations, truncations, then info
    CLOSE = 7  # client: empty; the session ends
    CLOSED = 8  # server: empty
    PING = 9  # client: any bytes, echoed
    PONG = 10  # server: the PING's bytes
    SHARE = 11  # client: {"token"}; results through shared memory from now on
    SHARED = 12  # server: empty
    ERROR = 15  # server: {"code", "message", "details"}


_MESSAGE_TYPES = {t.value: t for t in MessageType}


def pack_header(message_type: MessageType, body_length: int) -> bytes:
    """The 8-byte header of a frame."""
    return HEADER.pack(body_length, message_type)


def frame_buffer(message_type: MessageType, body_length: int) -> bytearray:
    """A frame's header then room for its body, to fill in and send again and again."""
    return bytearray(pack_header(message_type, body_length) + bytes(body_length))


def unpack_header(header: Buffer, max_body: int) -> tuple[MessageType, int]:
    """The type and body length a header announces.

    Raises:
        ProtocolError: for an unknown message type or nonzero reserved bytes.
        MessageTooLargeError: when the body is longer than ``max_body``.
    """
    length, raw_type, reserved, reserved_pair = _HEADER_FIELDS.unpack(header)
    if reserved or reserved_pair:
        raise ProtocolError(
            f"frame header {bytes(header).hex()} has nonzero reserved bytes: "
            "the peer is not speaking the netgym protocol"
        )
    message_type = _MESSAGE_TYPES.get(raw_type)
    if message_type is None:
        raise ProtocolError(f"unknown message type {raw_type} in frame header")
    if length > max_body:
        raise MessageTooLargeError(
            f"a {message_type.name} message of {length} bytes exceeds the limit of "
            f"{max_body} bytes (max_message_bytes)",
            details={"length": length, "limit": max_body},
        )
    return message_type, length


def recv_exact_into(sock: socket.socket, view: memoryview, had: int = 0) -> None:
    """Fill ``view`` from the socket; ``had``: bytes of the same body already read.

    Raises:
        ConnectionLostError: when the peer closes before the view is full.
    """
    received = 0
    total = len(view)
    while received < total:
        count = sock.recv_into(view[received:], total - received)
        if count == 0:
            raise ConnectionLostError(
                f"the connection closed after {had + received} of {had + total} expected bytes"
            )
        received += count


def recv_header(sock: socket.socket, max_body: int) -> tuple[MessageType, int]:
    """Read one header and return the type and length of the body that follows."""
    header = bytearray(HEADER_SIZE)
    recv_exact_into(sock, memoryview(header))
    return unpack_header(header, max_body)


def recv_frame(sock: socket.socket, max_body: int) -> tuple[MessageType, bytearray]:
    """Read one whole frame."""
    message_type, length = recv_header(sock, max_body)
    body = bytearray(length)
    recv_exact_into(sock, memoryview(body))
    return message_type, body


class FrameReader:
    """Reads frames from a socket through a buffer, so that a small frame and its
    header come in one system call (``recv_header`` and ``recv_exact_into`` make two).

    Once a reader exists, read the socket only through it: it may hold bytes
    already received.
    """

    def __init__(self, sock: socket.socket, max_body: int, buffer_bytes: int = 1 << 16) -> None:
        self.sock = sock
        self.max_body = max_body
        self._buffer = bytearray(buffer_bytes)
        self._view = memoryview(self._buffer)
        self._start = 0  # the unread bytes are _buffer[_start:_end]
        self._end = 0

    def header(self) -> tuple[MessageType, int]:
        """Read one header; return the type and length of the body that follows."""
        if self._end - self._start < HEADER_SIZE:
            self._fill(HEADER_SIZE)
        start = self._start
        self._start += HEADER_SIZE
        return unpack_header(self._view[start : start + HEADER_SIZE], self.max_body)

    def body_into(self, view: memoryview) -> None:
        """Fill ``view`` with the next bytes of the stream (a body, or part of one)."""
        buffered = min(len(view), self._end - self._start)
        if buffered:
            view[:buffered] = self._view[self._start : self._start + buffered]
            self._start += buffered
        if buffered < len(view):
            recv_exact_into(self.sock, view[buffered:], buffered)

    def frame(self) -> tuple[MessageType, bytearray]:
        """Read one whole frame."""
        message_type, length = self.header()
        body = bytearray(length)
        self.body_into(memoryview(body))
        return message_type, body

    def _fill(self, wanted: int) -> None:
        """Receive until ``wanted`` unread bytes are buffered."""
        unread = self._end - self._start
        self._view[:unread] = self._view[self._start : self._end]
        self._start, self._end = 0, unread
        while self._end < wanted:
            count = self.sock.recv_into(self._view[self._end :])
            if count == 0:
                raise ConnectionLostError(
                    f"the connection closed after {self._end} of {wanted} expected bytes",
                    details={"received": self._end},
                )
            self._end += count


def send_frame(
    sock: socket.socket, message_type: MessageType, parts: Sequence[Buffer] = ()
) -> None:
    """Send a header and the body's parts with as few system calls as the kernel allows."""
    if not parts:
        sock.sendall(pack_header(message_type, 0))
        return
    if len(parts) == 1 and isinstance(parts[0], bytes) and len(parts[0]) <= _JOIN_BYTES:
        sock.sendall(pack_header(message_type, len(parts[0])) + parts[0])  # an info, say
        return
    views = [memoryview(p).cast("B") for p in parts]
    length = sum(len(v) for v in views)
    if not hasattr(sock, "sendmsg"):  # Windows
        sock.sendall(b"".join([pack_header(message_type, length), *views]))
        return
    pending = [memoryview(pack_header(message_type, length)), *[v for v in views if len(v)]]
    while pending:
        sent = sock.sendmsg(pending)
        while sent:
            head = pending[0]
            if sent >= len(head):
                sent -= len(head)
                pending.pop(0)
            else:
                pending[0] = head[sent:]
                sent = 0


def send_value(sock: socket.socket, message_type: MessageType, value: Any) -> None:
    """Send a frame whose body is one value."""
    send_frame(sock, message_type, [pack_value(value)])


def pack_error(error: NetgymError) -> bytes:
    """The body of an ERROR frame; without the details where they cannot be sent (they
    may quote what a client sent, an array of a dtype the codec does not carry, say)."""
    try:
        return pack_value(error.to_dict())
    except ProtocolError:
        return pack_value({**error.to_dict(), "details": {}})


def unpack_error(body: Buffer) -> NetgymError:
    """The exception an ERROR frame's body names."""
    data = unpack_value(body)
    if not isinstance(data, dict):
        return ProtocolError(f"an ERROR frame's body is {type(data).__name__}, not a dict")
    return error_from_dict(data)


def expect(message_type: MessageType, body: bytearray, wanted: MessageType) -> bytearray:
    """Return the body when the frame is of the type wanted; raise what an ERROR carries.

    Raises:
        NetgymError: the error an ERROR frame carries, or ProtocolError for
            any other unexpected type.
    """
    if message_type == wanted:
        return body
    if message_type == MessageType.ERROR:
        raise unpack_error(body)
    raise ProtocolError(f"expected a {wanted.name} frame, got {message_type.name}")
