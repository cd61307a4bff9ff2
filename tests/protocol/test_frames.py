"""Frame headers: the checks that keep a stream in sync."""

from __future__ import annotations

import socket
import threading

import pytest

from netgym.errors import ConnectionLostError, MessageTooLargeError, ProtocolError
from netgym.protocol import MessageType
from netgym.protocol.frames import (
    FrameReader,
    frame_buffer,
    pack_header,
    recv_frame,
    send_frame,
    unpack_header,
)


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
        sender = threading.Thread(
            target=send_frame, args=(left, MessageType.PING, [body[:10], body[10:]])
        )
        sender.start()
        message_type, received = recv_frame(right, len(body))
        sender.join()
        assert message_type == MessageType.PING and received == body


class _NoSendmsg:
    """A socket as Windows has it: no ``sendmsg``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sendall = sock.sendall


@pytest.mark.parametrize("parts", [[], [b"x" * 10], [b"a" * 100_000, b"b" * 100_000]], ids=len)
def test_frames_go_out_where_sockets_have_no_sendmsg(parts: list[bytes]) -> None:
    left, right = socket.socketpair()
    with left, right:
        sender = threading.Thread(
            target=send_frame, args=(_NoSendmsg(left), MessageType.PING, parts)
        )
        sender.start()
        message_type, received = recv_frame(right, 1 << 20)
        sender.join()
        assert message_type == MessageType.PING and received == b"".join(parts)


def test_reader_splits_frames_that_arrive_together_and_reads_past_its_buffer() -> None:
    left, right = socket.socketpair()
    with left, right:
        big = bytes(range(256)) * 64  # longer than the reader's buffer
        stream = (
            pack_header(MessageType.PING, 3)
            + b"abc"
            + pack_header(MessageType.CLOSE, 0)
            + pack_header(MessageType.STEP, len(big))
            + big
        )
        sender = threading.Thread(target=left.sendall, args=(stream,))
        sender.start()
        reader = FrameReader(right, 1 << 20, buffer_bytes=1024)
        assert reader.frame() == (MessageType.PING, bytearray(b"abc"))
        assert reader.frame() == (MessageType.CLOSE, bytearray())
        assert reader.header() == (MessageType.STEP, len(big))
        body = bytearray(len(big))
        reader.body_into(memoryview(body)[:100])
        reader.body_into(memoryview(body)[100:])
        sender.join()
        assert body == big


def test_reader_reports_a_connection_closed_inside_a_header() -> None:
    left, right = socket.socketpair()
    with right:
        left.sendall(pack_header(MessageType.PING, 0)[:5])
        left.close()
        with pytest.raises(ConnectionLostError, match="after 5 of 8"):
            FrameReader(right, 100).header()


def test_reader_counts_the_buffered_bytes_of_a_body_cut_short() -> None:
    left, right = socket.socketpair()
    with right:
        left.sendall(pack_header(MessageType.STEP, 16) + b"12345")
        left.close()
        with pytest.raises(ConnectionLostError, match="after 5 of 16 expected bytes"):
            FrameReader(right, 100).frame()


def test_frame_buffer_is_a_frame_to_fill_in() -> None:
    frame = frame_buffer(MessageType.STEP, 4)
    frame[8:] = b"\x01\x02\x03\x04"
    assert unpack_header(frame[:8], 100) == (MessageType.STEP, 4)
    assert len(frame) == 12
