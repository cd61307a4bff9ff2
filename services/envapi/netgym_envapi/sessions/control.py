"""The control channel between the envapi's main process and a session process:
a SOCK_SEQPACKET pair that carries JSON messages (attach, ended, failed), and
with the attach, the client's socket itself."""

from __future__ import annotations

import json
import socket
from typing import Any

CONTROL_MESSAGE_BYTES = 1 << 20
CONTROL_PIECE_BYTES = 64 << 10  # well within a SOCK_SEQPACKET's send buffer


def send_control(
    control: socket.socket, message: dict[str, Any], fds: list[int] | None = None
) -> None:
    """One JSON message on the control socket (a SOCK_SEQPACKET pair), maybe with fds.

    A packet holds at most the socket's send buffer (about 200 KiB): a longer
    message (the spaces of a Box with bounds per element, say) goes in pieces
    that ``ControlReader`` joins: ``+`` before each piece but the last, ``.``
    before the last.
    """
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(control, [data], fds)
    elif len(data) <= CONTROL_PIECE_BYTES:
        control.send(data)
    else:
        pieces = range(0, len(data), CONTROL_PIECE_BYTES)
        for start in pieces:
            mark = b"." if start == pieces[-1] else b"+"
            control.send(mark + data[start : start + CONTROL_PIECE_BYTES])


class ControlReader:
    """Joins the pieces ``send_control`` splits a long message into."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []

    def message(self, packet: bytes) -> bytes | None:
        """The whole message once its last packet has come, else None."""
        if packet[:1] == b"+":
            self._pieces.append(packet[1:])
            return None
        if packet[:1] == b".":
            whole, self._pieces = b"".join([*self._pieces, packet[1:]]), []
            return whole
        return packet
