"""The session manager in process, with stand-in session processes."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
import time
from typing import Any

import pytest

from netgym.errors import InvalidRequestError, SessionEndedError, SessionNotFoundError
from netgym_envapi.sessions import manager as manager_module
from netgym_envapi.sessions.config import SessionConfig
from netgym_envapi.sessions.control import send_control
from netgym_envapi.sessions.manager import SessionManager
from netgym_envapi.sessions.record import SessionRecord, SessionState
from netgym_envapi.settings import Settings


def send_then_exit(control: socket.socket, go: int, message: dict[str, Any]) -> None:
    os.read(go, 1)
    send_control(control, message)


MESSAGES = {
    "ended": {"op": "ended", "reason": "closed by the client", "error": None},
    "failed": {
        "op": "failed",
        "error": InvalidRequestError("making 'CartPole-v1' failed: bad kwarg").to_dict(),
    },
}


def end_with(message: dict[str, Any], config: SessionConfig | None = None) -> SessionRecord:
    """A stand-in session process that sends ``message`` and exits in the same turn of
    the event loop as the manager reads it; the record once the exit is handled."""

    async def scenario() -> SessionRecord:
        manager = SessionManager(Settings())
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        go_read, go_write = os.pipe()
        process = multiprocessing.get_context("fork").Process(
            target=send_then_exit, args=(child, go_read, message)
        )
        process.start()
        child.close()
        os.close(go_read)
        parent.setblocking(False)
        record = SessionRecord(
            config=config
            or SessionConfig(session_id="0123456789abcdef", env_id="CartPole-v1", num_envs=1),
            process=process,
            control=parent,
            pid=process.pid,
        )
        manager._track(record)
        await asyncio.sleep(0.2)  # the watcher waits on the control socket now
        os.write(go_write, b"!")
        os.close(go_write)
        time.sleep(0.5)  # hold the loop: the message and the exit arrive in one turn
        await asyncio.wait_for(record.exited.wait(), 10)
        assert record.ready.done()
        return record

    return asyncio.run(scenario())


@pytest.mark.parametrize("op", MESSAGES)
def test_last_message_is_kept_when_the_exit_is_seen_in_the_same_turn(op: str) -> None:
    """The watcher may have read the last message when the exit is noticed: keep it."""
    record = end_with(MESSAGES[op])
    assert record.exitcode == 0
    assert record.public()["pid"] is not None
    if op == "ended":
        assert record.end_reason == "closed by the client"
        assert record.end_error is None
    else:
        with pytest.raises(InvalidRequestError, match="bad kwarg"):
            record.ready.result()


def test_an_ended_sessions_record_keeps_little() -> None:
    """A thousand are kept: a request's megabyte of kwargs, and an error that quotes
    it, each kept with every one, would fill the main process's memory."""
    kwargs = {"junk": [[] for _ in range(10_000)]}
    config = SessionConfig(
        session_id="0123456789abcdef", env_id="CartPole-v1", num_envs=1, env_kwargs=kwargs
    )
    said = f"the env failed: {kwargs}"
    error = InvalidRequestError(said).to_dict()
    record = end_with({"op": "ended", "reason": said, "error": error}, config)
    assert record.config.env_kwargs == {} and record.config.env_id == "CartPole-v1"
    assert record.observation_space is None
    assert record.end_reason is not None and record.end_error is not None
    for text in (record.end_reason, record.end_error["message"]):
        assert text.startswith("the env failed: {'junk'") and len(text) < 4100
        assert text.endswith(f"({len(said) - 4000:,} more characters)")


def test_concurrent_descriptions_of_one_env_share_one_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each would open a session of its own, counted against max_sessions."""
    opened: list[str] = []

    async def describe(self: SessionManager, env_id: str) -> dict[str, Any]:
        opened.append(env_id)
        await asyncio.sleep(0.2)
        return {"env_id": env_id}

    monkeypatch.setattr(SessionManager, "_describe", describe)

    async def scenario() -> list[dict[str, Any]]:
        manager = SessionManager(Settings())
        first = await asyncio.gather(*(manager.describe("Acrobot-v1") for _ in range(4)))
        return [*first, await manager.describe("Acrobot-v1")]  # cached now

    assert asyncio.run(scenario()) == [{"env_id": "Acrobot-v1"}] * 5
    assert opened == ["Acrobot-v1"]


def test_an_unknown_session_id_is_not_repeated_whole() -> None:
    async def scenario() -> str:
        manager = SessionManager(Settings())
        with pytest.raises(SessionNotFoundError) as caught:
            manager.get("f" * 60_000)  # a HELLO can carry one this long
        return caught.value.message

    message = asyncio.run(scenario())
    assert len(message) < 200 and "ids are 16 hex digits" in message


def sleep_a_minute() -> None:
    time.sleep(60)


def test_a_session_killed_as_hung_keeps_its_slot_until_it_exits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process hung in the kernel outlives SIGKILL for a while, and so do its workers
    and its emulator instances: it counts against max_sessions until it is gone."""
    signals: list[int] = []
    monkeypatch.setattr(manager_module, "_signal", lambda pid, signum: signals.append(signum))

    async def scenario() -> tuple[bool, bool]:
        manager = SessionManager(Settings(max_sessions=1))
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        process = multiprocessing.get_context("fork").Process(target=sleep_a_minute)
        process.start()
        pid = process.pid
        assert pid is not None
        child.close()
        parent.setblocking(False)
        record = SessionRecord(
            config=SessionConfig(session_id="0123456789abcdef", env_id="CartPole-v1", num_envs=1),
            process=process,
            control=parent,
            pid=pid,
        )
        record.state = SessionState.READY
        manager._track(record)
        try:
            manager._kill_hung(record)  # the kill does not take yet
            with pytest.raises(SessionEndedError, match="killed"):
                manager.attach(record.session_id, parent)
            while_alive = await manager._reserve_slot()
            os.kill(pid, signal.SIGKILL)
            await asyncio.wait_for(record.exited.wait(), 10)  # the manager reaps it
            return while_alive, await manager._reserve_slot()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    assert asyncio.run(scenario()) == (False, True)
    assert signals == [signal.SIGKILL]
