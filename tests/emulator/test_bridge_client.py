"""The bridge client against replies no real bridge sends (a stream out of step)."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from netgym.emulator.bridge import MAX_HEADER_BYTES, BridgeConnection
from netgym.errors import ConnectionLostError


def test_a_reply_header_too_long_to_be_true_is_a_broken_stream_not_a_huge_allocation() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:

        def answer() -> None:
            peer, _ = server.accept()
            with peer:
                peer.recv(5)
                peer.sendall(struct.pack("<I", 1 << 31) + b"ok 0 0")
                peer.recv(1)  # until the client closes

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        bridge = BridgeConnection("127.0.0.1", server.getsockname()[1], 0, 5.0, None, key="")
        try:
            with pytest.raises(ConnectionLostError, match="out of step") as caught:
                bridge.request(b"S", 0)
        finally:
            bridge.close()
        thread.join(5)
    assert f"over {MAX_HEADER_BYTES:,}: the game script returns too large an info" in (
        caught.value.message
    )
