"""Frame headers: the checks that keep a stream in sync."""

from __future__ import annotations

import socket

import pytest

from netgym.errors import MessageTooLargeError, ProtocolError
from netgym.protocol import MessageType
from netgym.protocol.frames import pack_header, recv_frame, send_frame, unpack_header


def test_header_is_eight_bytes_little_endian() -> None:
    assert pack_header(MessageType.STEP, 258) == b"\x02\x01\x00\x00\x05\x00\x00\x00"


def test_unknown_type_and_reserved_bytes_are_refused() -> None:
    with pytest.raises(ProtocolError, match="unknown message type 99"):
        unpack_header(b"\x00\x00\x00\x00\x63\x00\x00\x00", 100)
    with pytest.raises(ProtocolError, match="reserved"):
        unpack_header(b"\x00\x00\x00\x00\x05\x01\x00\x00", 100)


def test_oversized_is_refused_before_reading_the_body() -> None:
    with pytest.raises(MessageTooLargeError, match="exceeds the limit of 100"):
        unpack_header(pack_header(MessageType.STEP, 101), 100)


def test_send_and_receive_large_frame_in_parts() -> None:
    left, right = socket.socketpair()
    with left, right:
        body = bytes(range(256)) * 4096
        import threading

        sender = threading.Thread(
            target=send_frame, args=(left, MessageType.PING, [body[:10], body[10:]])
        )
        sender.start()
        message_type, received = recv_frame(right, len(body))
        sender.join()
        assert message_type == MessageType.PING and received == body
