"""SIGTERM in a session process never cuts a frame in two."""

from __future__ import annotations

import signal

import pytest

from netgym.protocol import MessageType
from netgym_envapi.sessions.signals import FrameGuard, Terminated, raise_terminated, send_whole


class _SocketSignalledMidSend:
    """Takes the frame in two writes, SIGTERM's handler running in between."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def sendall(self, data: bytes) -> None:
        self.sent.append("header")
        raise_terminated(signal.SIGTERM, None)  # as the handler runs mid-send
        self.sent.append("the rest of the body")


def test_sigterm_during_a_frame_takes_effect_once_the_frame_is_out() -> None:
    client = _SocketSignalledMidSend()
    with pytest.raises(Terminated):
        send_whole(client, MessageType.PONG, [b"x"])  # type: ignore[arg-type]
    assert client.sent == ["header", "the rest of the body"]
    assert not FrameGuard.pending


def test_sigterm_outside_a_frame_takes_effect_at_once() -> None:
    with pytest.raises(Terminated):
        raise_terminated(signal.SIGTERM, None)
