"""The bridge client against replies no real bridge sends (a stream out of step)."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from netgym.emulator.bridge import MAX_HEADER_BYTES, BridgeConnection
from netgym.errors import ConnectionLostError, EnvError, NetgymError


def error_of_the_reply(length: int, header: bytes) -> NetgymError:
    """What a step raises when the bridge answers ``header`` announced as ``length`` bytes."""
    with socket.create_server(("127.0.0.1", 0)) as server:

        def answer() -> None:
            peer, _ = server.accept()
            with peer:
                peer.recv(5)
                peer.sendall(struct.pack("<I", length) + header + struct.pack("<I", 0))
                peer.recv(1)  # until the client closes

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        bridge = BridgeConnection("127.0.0.1", server.getsockname()[1], 0, 5.0, None, key="")
        try:
            with pytest.raises(NetgymError) as caught:
                bridge.request(b"S", 0)
        finally:
            bridge.close()
        thread.join(5)
    return caught.value


def test_a_reply_header_too_long_to_be_true_is_a_broken_stream_not_a_huge_allocation() -> None:
    error = error_of_the_reply(1 << 31, b"ok 0 0")
    assert isinstance(error, ConnectionLostError) and "out of step" in error.message
    assert f"over {MAX_HEADER_BYTES:,}: the game script returns too large an info" in error.message


def test_a_reply_that_does_not_parse_is_an_env_error() -> None:
    """A bridge broken by its game script (its string.format replaced, say)."""
    error = error_of_the_reply(6, b"ok x 0")
    assert isinstance(error, EnvError) and "a reply that is not one: 'ok x 0'" in error.message
