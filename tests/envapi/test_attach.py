"""A client whose HELLO crosses its session's attach timeout hears why it is refused.

The session process gives up waiting as the main process hands it the client's
socket: the main process answers the session's "ended" with "ended_seen", and
the session answers every socket that came before it with ERROR.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import threading
import time

from netgym.errors import SessionEndedError
from netgym.protocol import MessageType
from netgym.protocol.frames import recv_frame, unpack_error
from netgym_envapi.sessions.config import SessionConfig
from netgym_envapi.sessions.control import CONTROL_MESSAGE_BYTES, send_control
from netgym_envapi.sessions.manager import SessionManager
from netgym_envapi.sessions.process import Session
from netgym_envapi.sessions.record import SessionRecord
from netgym_envapi.settings import Settings

CONFIG = SessionConfig(
    session_id="0123456789abcdef", env_id="CartPole-v1", num_envs=1, attach_timeout_s=0.3
)


def test_a_client_handed_over_as_the_session_gives_up_gets_an_error_not_silence() -> None:
    main, session_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    client, handed = socket.socketpair()
    session = Session(CONFIG, session_end)
    waited: list[socket.socket | None] = []
    waiting = threading.Thread(target=lambda: waited.append(session._wait_for_client()))
    waiting.start()
    main.settimeout(10)
    assert json.loads(main.recv(CONTROL_MESSAGE_BYTES))["op"] == "ended"
    # The main process sent the client before it read "ended".
    socket.send_fds(main, [json.dumps({"op": "attach"}).encode()], [handed.fileno()])
    handed.close()
    send_control(main, {"op": "ended_seen"})
    waiting.join(10)
    assert waited == [None]
    client.settimeout(10)
    message_type, body = recv_frame(client, 1 << 20)
    assert message_type == MessageType.ERROR
    error = unpack_error(body)
    assert isinstance(error, SessionEndedError)
    assert "no client attached within 0.3 s" in error.message
    for sock in (main, session_end, client):
        sock.close()


def _end_then_hear(control: socket.socket) -> None:
    send_control(control, {"op": "ended", "reason": "no client attached", "error": None})
    control.settimeout(10)
    os._exit(0 if json.loads(control.recv(CONTROL_MESSAGE_BYTES))["op"] == "ended_seen" else 1)


def test_the_main_process_answers_ended_with_ended_seen() -> None:
    async def scenario() -> SessionRecord:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        process = multiprocessing.get_context("fork").Process(target=_end_then_hear, args=(child,))
        record = SessionRecord(config=CONFIG, process=process, control=parent, pid=None)
        parent.setblocking(False)
        process.start()
        child.close()
        record.pid = process.pid
        SessionManager(Settings())._track(record)
        await asyncio.wait_for(record.exited.wait(), 10)
        return record

    started = time.monotonic()
    record = asyncio.run(scenario())
    assert record.exitcode == 0, "the stand-in session heard no ended_seen"
    assert time.monotonic() - started < 5
