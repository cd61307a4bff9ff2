"""The data connection's checks of what the server sends, against a server stand-in."""

from __future__ import annotations

import socket

import gymnasium as gym
import numpy as np
import pytest

from netgym.client.connection import DataConnection
from netgym.errors import ConnectionLostError
from netgym.protocol import MessageType, ResultLayout
from netgym.protocol.frames import FrameReader, send_frame
from netgym.protocol.values import pack_value


def connected_to(client: socket.socket) -> DataConnection:
    """A connection past its HELLO, over ``client``."""
    connection = object.__new__(DataConnection)
    connection.timeout_s = 5.0
    connection.shared_results = None
    connection.sock = client
    connection.max_message_bytes = 1 << 20
    connection.reader = FrameReader(client, connection.max_message_bytes)
    client.settimeout(5.0)
    return connection


LAYOUT = ResultLayout(gym.spaces.Box(-1.0, 1.0, (4,), np.float32), 2)


def test_a_reset_result_shorter_than_its_observations_breaks_the_connection() -> None:
    """As a short STEP_RESULT does: a server that sends one cannot be trusted."""
    server, client = socket.socketpair()
    with server, client:
        connection = connected_to(client)
        send_frame(server, MessageType.RESET_RESULT, [bytes(8), pack_value({})])
        short = r"a RESET_RESULT of \d+ bytes is shorter than the 32 "
        with pytest.raises(ConnectionLostError, match=short):
            connection.reset(None, None, LAYOUT)


def test_shared_memory_smaller_than_the_results_breaks_the_connection() -> None:
    server, client = socket.socketpair()
    with server, client:
        connection = connected_to(client)
        connection.shared_results = np.zeros(8, np.uint8)
        send_frame(server, MessageType.RESET_RESULT, [pack_value({})])
        with pytest.raises(ConnectionLostError, match="shared memory has 8 bytes"):
            connection.reset(None, None, LAYOUT)
