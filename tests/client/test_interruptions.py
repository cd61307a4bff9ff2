"""A request cut short on the client (Ctrl-C, a garbled frame) never shifts later replies."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

import netgym
from netgym.errors import ConnectionLostError, SessionStateError, UnsupportedSpaceError
from netgym.protocol import MessageType
from netgym.protocol.frames import FrameReader, send_frame
from tests.servers import EnvApi


def live_sessions(envapi: EnvApi) -> list[str]:
    headers = {"Authorization": f"Bearer {envapi.token}"}
    sessions = httpx.get(f"{envapi.url}/v1/sessions", headers=headers).json()["sessions"]
    return [s["session_id"] for s in sessions]


def test_ctrl_c_while_waiting_closes_the_env_instead_of_shifting_replies(
    tmp_envapi: EnvApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    envs = netgym.make_vec("CartPole-v1", 2, url=tmp_envapi.url, token=tmp_envapi.token)
    envs.reset(seed=0)
    real_header = FrameReader.header

    def interrupted(self: FrameReader) -> Any:
        monkeypatch.setattr(FrameReader, "header", real_header)
        raise KeyboardInterrupt  # as if Ctrl-C came while the reply was on its way

    monkeypatch.setattr(FrameReader, "header", interrupted)
    with pytest.raises(KeyboardInterrupt):
        envs.step(np.ones(2, np.int64))
    # The reply to that step is unread: no later call may take it for its own.
    with pytest.raises(SessionStateError, match="closed"):
        envs.step(np.ones(2, np.int64))
    envs.close()
    assert envs.session_id not in live_sessions(tmp_envapi)


def test_a_reply_of_the_wrong_type_is_a_lost_connection(tmp_envapi: EnvApi) -> None:
    envs = netgym.make_vec("CartPole-v1", 2, url=tmp_envapi.url, token=tmp_envapi.token)
    envs.reset(seed=0)
    # A PING the client does not know it sent: its PONG comes before the step's reply.
    send_frame(envs._connection.sock, MessageType.PING, [b""])
    with pytest.raises(ConnectionLostError, match="out of step: expected STEP_RESULT, got PONG"):
        envs.step(np.ones(2, np.int64))
    with pytest.raises(SessionStateError, match="closed"):
        envs.step(np.ones(2, np.int64))
    envs.close()
    assert envs.session_id not in live_sessions(tmp_envapi)


def test_a_session_whose_spaces_the_client_cannot_read_is_closed(
    tmp_envapi: EnvApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable(spec: Any) -> Any:
        raise UnsupportedSpaceError("a space from a newer server")

    monkeypatch.setattr("netgym.client.vector.unpack_space", unreadable)
    before = live_sessions(tmp_envapi)
    with pytest.raises(UnsupportedSpaceError) as caught:
        netgym.make_vec("CartPole-v1", 2, url=tmp_envapi.url, token=tmp_envapi.token)
    # The traceback keeps the half-made env alive: the session ended anyway.
    assert caught.traceback is not None
    assert live_sessions(tmp_envapi) == before
