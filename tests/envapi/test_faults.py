"""Faults with real processes: each gets a clear error, and the service keeps serving."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import netgym
from netgym.client.connection import DataConnection
from netgym.errors import (
    AuthenticationError,
    ConnectionLostError,
    EnvError,
    InvalidActionError,
    InvalidRequestError,
    LimitExceededError,
    MessageTooLargeError,
    NetgymError,
    PeerError,
    ProtocolError,
    ProtocolVersionError,
    SessionEndedError,
    SessionNotFoundError,
    UnknownEnvError,
    WorkerCrashedError,
    WorkerTimeoutError,
)
from netgym.protocol import MessageType, pack_value, unpack_value
from netgym.protocol.frames import expect, pack_header, recv_frame, send_frame, unpack_error
from netgym_envapi.sessions import signals
from tests.servers import EnvApi, alive, children, descendants, run_envapi, wait_for


def wait_until_gone(pids: list[int], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while any(alive(p) for p in pids):
        assert time.monotonic() < deadline, (
            f"still alive after {timeout_s} s: {[p for p in pids if alive(p)]}"
        )
        time.sleep(0.05)


def session_status(envapi: EnvApi, session_id: str) -> dict:
    headers = {"Authorization": f"Bearer {envapi.token}"}
    return httpx.get(f"{envapi.url}/v1/sessions/{session_id}", headers=headers, timeout=60).json()


def assert_still_serving(envapi: EnvApi) -> None:
    with netgym.make("CartPole-v1", url=envapi.url, token=envapi.token) as env:
        env.reset(seed=0)
        env.step(0)


# --- clients and workers that die ---------------------------------------------------------------

CLIENT = """
import sys, netgym
envs = netgym.make_vec("ALE/Pong-v5", 2, url=sys.argv[1], token=sys.argv[2])
envs.reset(seed=0)
print(envs.session_id, flush=True)
while True:
    envs.step(envs.action_space.sample())
"""


def test_killed_client_has_its_workers_gone_within_seconds(envapi: EnvApi) -> None:
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, envapi.url, envapi.token or ""],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None
        session_id = client.stdout.readline().strip()
        session_pid = session_status(envapi, session_id)["pid"]
        processes = [session_pid, *descendants(session_pid)]
        assert len(processes) == 2  # the session process steps env 0, a worker env 1
        time.sleep(0.3)  # mid-stepping
        client.kill()
        wait_until_gone(processes)
        status = session_status(envapi, session_id)
        assert status["state"] == "ended"
        assert status["end_reason"] == "the client disconnected"
    finally:
        client.kill()
        client.wait()
    assert_still_serving(envapi)


@pytest.mark.parametrize("victim", ["worker", "session process"])
def test_killed_worker_is_a_clear_error_and_other_sessions_go_on(
    envapi: EnvApi, victim: str
) -> None:
    kwargs = {"url": envapi.url, "token": envapi.token}
    doomed = netgym.make_vec("ALE/Pong-v5", 2, **kwargs)
    bystander = netgym.make_vec("ALE/Pong-v5", 2, **kwargs)
    try:
        for envs in (doomed, bystander):
            envs.reset(seed=0)
            envs.step(envs.action_space.sample())
        session_pid = session_status(envapi, doomed.session_id)["pid"]
        workers = children(session_pid)
        os.kill(workers[0] if victim == "worker" else session_pid, signal.SIGKILL)
        with pytest.raises(WorkerCrashedError, match="killed by SIGKILL") as caught:
            for _ in range(100):
                doomed.step(doomed.action_space.sample())
        if victim == "worker":
            assert "worker 1 (env 1)" in str(caught.value)
        wait_until_gone([session_pid, *workers])
        for _ in range(20):
            bystander.step(bystander.action_space.sample())
    finally:
        doomed.close()
        bystander.close()


@pytest.mark.parametrize(
    ("env_id", "error", "message"),
    [
        ("netgym-test/Crash-v0", WorkerCrashedError, "killed by SIGSEGV"),
        ("netgym-test/Hang-v0", WorkerTimeoutError, "within 2 s"),
    ],
    ids=["segfault", "hang"],
)
@pytest.mark.parametrize("faulty", [0, 1], ids=["in-session-process", "in-worker"])
def test_crashing_and_hanging_envs_end_only_their_session(
    tmp_envapi: EnvApi, env_id: str, error: type[NetgymError], message: str, faulty: int
) -> None:
    kwargs = {"url": tmp_envapi.url, "token": tmp_envapi.token}
    with (
        netgym.make_vec(env_id, 2, **kwargs) as broken,
        netgym.make_vec("CartPole-v1", 2, **kwargs) as ok,
    ):
        broken.reset(seed=0)
        ok.reset(seed=0)
        session_pid = session_status(tmp_envapi, broken.session_id)["pid"]
        workers = children(session_pid)
        started = time.monotonic()
        actions = np.zeros(2, dtype=np.int64)
        actions[faulty] = 1
        with pytest.raises(error, match=message):
            broken.step(actions)
        assert time.monotonic() - started < 10
        wait_until_gone([session_pid, *workers])
        ok.step(np.array([0, 1]))
        client = session_status(tmp_envapi, broken.session_id)["client"]
        ended = f"session {broken.session_id} ({env_id}, 2 envs) of {client} ended: "
        wait_for(lambda: ended in tmp_envapi.log.read_text())  # for the operator


def error_of_a_faulty_step(
    envapi: EnvApi, env_id: str, actions: list[int], error: type[NetgymError]
) -> NetgymError:
    """The error of a step of 2 envs into their fault; the session then resets and steps."""
    with netgym.make_vec(env_id, 2, url=envapi.url, token=envapi.token) as envs:
        envs.reset(seed=0)
        with pytest.raises(error) as caught:
            envs.step(np.array(actions))
        envs.reset(seed=0)
        envs.step(np.array([0, 0]))
    return caught.value


def test_env_exception_carries_its_traceback_and_the_session_survives(tmp_envapi: EnvApi) -> None:
    error = error_of_a_faulty_step(tmp_envapi, "netgym-test/Raise-v0", [0, 1], EnvError)
    assert error.message.startswith("env 1: the env raised RuntimeError: the env broke on purpose")
    assert "fault_envs.py" in error.details["traceback"]
    assert error.details["env_index"] == 1  # to reset it alone (reset_mask)
    # The service's log says so too: where a game script's author looks.
    assert "the env broke on purpose" in tmp_envapi.log.read_text()


def test_a_session_logs_each_env_error_once(tmp_envapi: EnvApi) -> None:
    with netgym.make_vec(
        "netgym-test/Raise-v0", 2, url=tmp_envapi.url, token=tmp_envapi.token
    ) as envs:
        envs.reset(seed=0)
        for _ in range(5):  # a client that goes on stepping a broken env
            with pytest.raises(EnvError, match="the env broke on purpose"):
                envs.step(np.array([0, 1]))
    assert tmp_envapi.log.read_text().count("the env broke on purpose") == 1


def test_an_env_error_that_quotes_the_request_is_logged_shortened(tmp_envapi: EnvApi) -> None:
    # Else a client could fill the disk with the log, as fast as it sends.
    with netgym.make_vec("CartPole-v1", 1, url=tmp_envapi.url, token=tmp_envapi.token) as envs:
        with pytest.raises(EnvError, match="x" * 60_000):  # the client gets it whole
            envs.reset(options={"low": "x" * 60_000})
        envs.reset(seed=0)
    log = tmp_envapi.log.read_text()
    assert "x" * 3000 in log and "x" * 5000 not in log
    assert "more characters)" in log


def test_an_error_code_the_client_does_not_know_keeps_its_code_and_the_session(
    tmp_envapi: EnvApi,
) -> None:
    # The emulator service's game_error, say: it is no failure of the session.
    error = error_of_a_faulty_step(tmp_envapi, "netgym-test/PeerRaise-v0", [0, 1], PeerError)
    assert "a service's own error" in error.message
    assert error.code == "service_only"
    assert error.to_dict()["code"] == "service_only"


@pytest.mark.parametrize("faulty", [0, 1], ids=["in-session-process", "in-worker"])
def test_an_env_whose_own_connection_broke_is_an_env_error_and_the_session_goes_on(
    tmp_envapi: EnvApi, faulty: int
) -> None:
    # The session's client must not take it for the end of its own connection.
    actions = [int(faulty == 0), int(faulty == 1)]
    error = error_of_a_faulty_step(tmp_envapi, "netgym-test/LostConnection-v0", actions, EnvError)
    assert "own connection broke, on purpose" in error.message
    assert error.details["cause"] == "connection_lost"
    assert error.details["env_index"] == faulty


def test_only_the_sessions_own_step_timer_ends_the_session_from_inside_an_env() -> None:
    from netgym_envapi.sessions.envslice import StepTimerExpired, as_netgym_error

    # A remote env inside an env, whose own server timed out: that env's error.
    inner = as_netgym_error(WorkerTimeoutError("its own session hung"), 1)
    assert isinstance(inner, EnvError) and inner.details["cause"] == "worker_timeout"
    own = as_netgym_error(StepTimerExpired("this session's step took too long"), 1)
    assert isinstance(own, WorkerTimeoutError) and own.code == "worker_timeout"


def test_envs_reset_after_their_episode_ended_are_not_done_when_a_later_step_fails(
    tmp_envapi: EnvApi,
) -> None:
    """Autoreset disabled: a step that fails part-way must not bring back old done flags."""
    with netgym.make_vec(
        "netgym-test/Raise-v0",
        4,
        url=tmp_envapi.url,
        token=tmp_envapi.token,
        autoreset_mode=AutoresetMode.DISABLED,
        wrappers=[{"name": "time_limit", "kwargs": {"max_episode_steps": 2}}],
    ) as envs:
        envs.reset(seed=0)
        envs.step(np.zeros(4, np.int64))
        assert envs.step(np.zeros(4, np.int64))[3].all()  # every episode truncated
        envs.reset(seed=1)
        # Env 0 raises; the envs stepped after it in its process never step.
        with pytest.raises(EnvError, match="broke on purpose"):
            envs.step(np.array([1, 0, 0, 0]))
        envs.step(np.zeros(4, np.int64))  # none of them is done


def test_spaces_too_long_for_one_control_packet_are_served(tmp_envapi: EnvApi) -> None:
    from tests.fault_envs import FineBoundsEnv

    with netgym.make_vec(
        "netgym-test/FineBounds-v0", 2, url=tmp_envapi.url, token=tmp_envapi.token
    ) as envs:
        assert envs.single_observation_space == FineBoundsEnv.observation_space
        envs.reset(seed=0)
        envs.step(np.zeros(2, np.int64))


def test_out_of_space_action_is_refused_and_the_session_goes_on(envapi: EnvApi) -> None:
    with netgym.make_vec("CartPole-v1", 3, url=envapi.url, token=envapi.token) as envs:
        envs.reset(seed=0)
        with pytest.raises(InvalidActionError, match=r"env 2 is 5, which is not in Discrete\(2\)"):
            envs.step(np.array([0, 1, 5]))
        envs.step(np.array([0, 1, 1]))
    with netgym.make("Pendulum-v1", url=envapi.url, token=envapi.token) as env:
        env.reset(seed=0)
        with pytest.raises(InvalidActionError, match="not in Box"):
            env.step(np.array([9.0], dtype=np.float32))
        env.step(np.array([1.0], dtype=np.float32))


# --- timeouts and limits ------------------------------------------------------------------------


def test_silent_client_loses_its_session_after_the_idle_timeout(tmp_path: Path) -> None:
    with run_envapi(tmp_path, log_level="info", idle_timeout_s="4") as server:
        envs = netgym.make_vec("CartPole-v1", 2, url=server.url, token=server.token)
        envs.reset(seed=0)
        session_pid = session_status(server, envs.session_id)["pid"]
        processes = [session_pid, *descendants(session_pid)]
        wait_until_gone(processes, timeout_s=8)
        with pytest.raises(SessionEndedError, match="idle for 4 s"):
            envs.step(np.array([0, 0]))
        end_error = session_status(server, envs.session_id)["end_error"]
        assert end_error["code"] == "session_ended" and "idle for 4 s" in end_error["message"]
        envs.close()
        client = session_status(server, envs.session_id)["client"]
        logged = f"session {envs.session_id} (CartPole-v1, 2 envs) of {client} was idle for 4 s"
        assert logged in server.log.read_text()  # for the operator
        # One that asks for a reply and reads none of it is not idle: it does not read.
        session_id = open_session(server, "netgym-test/BigObs-v0")
        with raw_connection(server) as sock:
            expect(*hello(sock, session_id, server.token), MessageType.WELCOME)
            send_frame(sock, MessageType.RESET, [pack_value({"seed": 0})])  # 16 MB to read
            status = wait_for_end(server, session_id)
        assert status["end_reason"] == (
            "its client did not read a whole reply within 4 s (idle_timeout_s)"
        )


def test_the_log_says_who_opened_each_session_and_who_was_refused_why(tmp_path: Path) -> None:
    """With several users on one envapi, the operator tells whose session ended, and
    why a request was refused, from the log alone."""
    with run_envapi(tmp_path, log_level="info") as server:
        kwargs = {"url": server.url, "token": server.token}
        with netgym.make("CartPole-v1", **kwargs) as env:
            client = session_status(server, env.session_id)["client"]
            assert client.startswith("127.0.0.1:")
        with pytest.raises(UnknownEnvError):
            netgym.make("CartPol-v1", **kwargs)
        with pytest.raises(AuthenticationError):
            netgym.make("CartPole-v1", url=server.url, token="a guess")
        headers = {"Authorization": f"Bearer {server.token}"}
        httpx.post(f"{server.url}/v1/sessions", json={"env": "x"}, headers=headers, timeout=30)
        wait_for(lambda: "closed by the client" in server.log.read_text())
        log = server.log.read_text()
    assert f"session {env.session_id} (CartPole-v1, 1 env) opened for {client}" in log
    assert f"session {env.session_id} (CartPole-v1, 1 env) of {client} ended: " in log
    assert "POST /v1/sessions from 127.0.0.1:" in log
    assert "refused (404 unknown_env): no env 'CartPol-v1' is served here" in log
    assert "refused (401 unauthorized): " in log
    assert "refused (422 invalid_request): invalid request: body.env_id: Field required" in log


def test_envs_that_take_too_long_to_make_are_a_clear_error_and_leave_nothing(
    tmp_path: Path,
) -> None:
    with run_envapi(tmp_path, make_timeout_s="5") as envapi:  # CartPole's make, below, too
        kwargs = {"url": envapi.url, "token": envapi.token}
        with pytest.raises(WorkerTimeoutError, match=r"took longer than 5 s .*MAKE_TIMEOUT_S"):
            netgym.make_vec("netgym-test/SlowMake-v0", 1, **kwargs)
        wait_for(lambda: not envapi.live_sessions(), what="the session was left running")
        with netgym.make("CartPole-v1", **kwargs) as env:
            env.reset(seed=0)
    # Its end, which no request waits for any more, is not logged as an error lost.
    assert "never retrieved" not in envapi.log.read_text()


def test_a_session_that_fails_to_start_says_whose_fault_it_is(tmp_envapi: EnvApi) -> None:
    """An env that refuses its kwargs: the request's fault. One that fails past its
    making (netgym's own code, say): the service's, with the traceback in its log."""
    kwargs = {"url": tmp_envapi.url, "token": tmp_envapi.token}
    with pytest.raises(InvalidRequestError, match=r"rejected env_kwargs"):
        netgym.make("CartPole-v1", **kwargs, env_kwargs={"no_such_argument": 1})
    with pytest.raises(NetgymError) as caught:
        netgym.make("netgym-test/RaiseOnClose-v0", **kwargs)
    assert caught.value.code == "internal"
    assert caught.value.message == (
        "starting a session of 'netgym-test/RaiseOnClose-v0' failed inside the service: "
        "RuntimeError: close broke on purpose (the envapi's log has the traceback)"
    )
    log = tmp_envapi.log.read_text()
    assert "could not start" in log and 'raise RuntimeError("close broke on purpose")' in log
    assert_still_serving(tmp_envapi)


def test_session_never_attached_ends_after_the_attach_timeout(tmp_path: Path) -> None:
    with run_envapi(tmp_path, log_level="info", attach_timeout_s="3") as server:
        headers = {"Authorization": f"Bearer {server.token}"}
        reply = httpx.post(
            f"{server.url}/v1/sessions", json={"env_id": "CartPole-v1"}, headers=headers, timeout=60
        )
        session_id = reply.json()["session_id"]
        wait_until_gone([reply.json()["pid"]], timeout_s=8)
        status = session_status(server, session_id)
        assert "no client attached within 3 s" in status["end_reason"]
        assert status["end_error"]["code"] == "session_ended"
        logged = (
            f"session {session_id} (CartPole-v1, 1 env) of {status['client']} ended: no client "
            "attached within 3 s"
        )
        wait_for(lambda: logged in server.log.read_text(), what=server.log.read_text())
        with raw_connection(server) as sock:  # a client too late hears why
            message_type, body = hello(sock, session_id, server.token)
            assert message_type == MessageType.ERROR
            error = unpack_error(body)
            assert isinstance(error, SessionEndedError) and "no client attached" in error.message


def test_session_limit(tmp_envapi: EnvApi) -> None:
    kwargs = {"url": tmp_envapi.url, "token": tmp_envapi.token}
    opened = [netgym.make("CartPole-v1", **kwargs) for _ in range(3)]
    with pytest.raises(LimitExceededError, match="NETGYM_MAX_SESSIONS"):
        netgym.make("CartPole-v1", **kwargs)
    closed = opened.pop()
    closed.close()  # its process exits a little later, and then frees its place
    wait_for(lambda: closed.session_id not in tmp_envapi.live_session_ids(), 30)
    opened.append(netgym.make("CartPole-v1", **kwargs))
    for env in opened:
        env.close()


# --- bad bytes on the data port ------------------------------------------------------------------


def open_session(envapi: EnvApi, env_id: str = "CartPole-v1") -> str:
    headers = {"Authorization": f"Bearer {envapi.token}"}
    reply = httpx.post(
        f"{envapi.url}/v1/sessions",
        json={"env_id": env_id, "num_envs": 2},
        headers=headers,
        timeout=60,
    )
    return str(reply.json()["session_id"])


@contextmanager
def raw_connection(envapi: EnvApi) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", envapi.data_port), timeout=10)
    try:
        yield sock
    finally:
        sock.close()


def hello(
    sock: socket.socket, session_id: str, token: str | None, protocol: int = 1
) -> tuple[MessageType, bytearray]:
    send_frame(
        sock,
        MessageType.HELLO,
        [pack_value({"protocol": protocol, "session_id": session_id, "token": token})],
    )
    return recv_frame(sock, 1 << 24)


def attached(envapi: EnvApi) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", envapi.data_port), timeout=10)
    message_type, body = hello(sock, open_session(envapi), envapi.token)
    assert message_type == MessageType.WELCOME, body
    send_frame(sock, MessageType.RESET, [pack_value({"seed": 0})])
    expect(*recv_frame(sock, 1 << 24), MessageType.RESET_RESULT)
    return sock


def error_of(sock: socket.socket) -> NetgymError:
    message_type, body = recv_frame(sock, 1 << 24)
    assert message_type == MessageType.ERROR, message_type
    return unpack_error(body)


@pytest.mark.parametrize(
    ("token", "protocol", "session", "error"),
    [
        (None, 1, "real", AuthenticationError),
        ("wrong", 1, "real", AuthenticationError),
        ("right", 2, "real", ProtocolVersionError),
        ("right", True, "real", ProtocolVersionError),
        ("right", 1.0, "real", ProtocolVersionError),
        ("right", 1, "0000000000000000", SessionNotFoundError),
    ],
    ids=[
        "missing-token",
        "wrong-token",
        "protocol-version",
        "protocol-true",
        "protocol-float",
        "unknown-session",
    ],
)
def test_bad_hello_is_refused(
    envapi: EnvApi, token: str | None, protocol: Any, session: str, error: type[NetgymError]
) -> None:
    session_id = open_session(envapi) if session == "real" else session
    with raw_connection(envapi) as sock:
        message_type, body = hello(
            sock, session_id, envapi.token if token == "right" else token, protocol
        )
        assert message_type == MessageType.ERROR
        assert isinstance(unpack_error(body), error)
    assert_still_serving(envapi)


def test_a_hello_whose_protocol_is_an_array_is_refused_with_an_error(envapi: EnvApi) -> None:
    # An array of a dtype that pack_value never sends is no value at all.
    session_id = open_session(envapi)
    text = json.dumps(
        {"protocol": {"$nd": [0, "|V8", [1]]}, "session_id": session_id, "token": envapi.token}
    ).encode()
    head = struct.pack("<I", len(text)) + text
    with raw_connection(envapi) as sock:
        send_frame(sock, MessageType.HELLO, [head + b"\0" * (-len(head) % 8) + b"\0" * 8])
        error = error_of(sock)
        assert type(error) is ProtocolError and "dtype is a number or bool" in error.message
    assert_still_serving(envapi)


def test_second_client_cannot_take_an_attached_session(envapi: EnvApi) -> None:
    with (
        netgym.make_vec("CartPole-v1", 1, url=envapi.url, token=envapi.token) as envs,
        raw_connection(envapi) as sock,
    ):
        message_type, body = hello(sock, envs.session_id, envapi.token)
        assert message_type == MessageType.ERROR and "attached" in unpack_error(body).message


def test_garbage_before_hello(envapi: EnvApi) -> None:
    with raw_connection(envapi) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert isinstance(error_of(sock), ProtocolError)
    assert_still_serving(envapi)


def test_step_with_wrong_length_is_refused_and_the_session_goes_on(envapi: EnvApi) -> None:
    with attached(envapi) as sock:
        send_frame(sock, MessageType.STEP, [b"\x00" * 3])
        error = error_of(sock)
        assert isinstance(error, ProtocolError) and "take 16" in error.message
        send_frame(sock, MessageType.STEP, [np.array([0, 1], "<i8").tobytes()])
        expect(*recv_frame(sock, 1 << 24), MessageType.STEP_RESULT)


def test_malformed_reset_body_is_refused_and_the_session_goes_on(envapi: EnvApi) -> None:
    with attached(envapi) as sock:
        send_frame(sock, MessageType.RESET, [b"\xff\xff\xff\x00garbage"])
        assert isinstance(error_of(sock), ProtocolError)
        send_frame(sock, MessageType.RESET, [pack_value({"seed": "not a seed"})])
        assert "seed must be" in error_of(sock).message
        send_frame(sock, MessageType.RESET, [pack_value({"seed": -1})])  # NumPy refuses it
        refused = error_of(sock)
        assert isinstance(refused, InvalidRequestError) and "0 or more" in refused.message
        send_frame(sock, MessageType.RESET, [pack_value({"seed": 0, "option": {}})])  # typo
        assert "seed and options only, not option" in error_of(sock).message
        send_frame(sock, MessageType.PING, [b"still there?"])
        assert recv_frame(sock, 1024) == (MessageType.PONG, bytearray(b"still there?"))


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (pack_header(MessageType.STEP, 2**31), MessageTooLargeError),
        (b"\x00\x00\x00\x00\x63\x00\x00\x00", ProtocolError),
        (b"\x00\x00\x00\x00\x05\x07\x07\x07", ProtocolError),
    ],
    ids=["oversized", "unknown-type", "reserved-bytes"],
)
def test_bad_header_is_a_clear_error_and_ends_only_that_session(
    envapi: EnvApi, header: bytes, error: type[NetgymError]
) -> None:
    with attached(envapi) as sock:
        sock.sendall(header)
        assert isinstance(error_of(sock), error)
        assert sock.recv(1) == b""  # the session closed the stream it can no longer trust
    assert_still_serving(envapi)


def test_truncated_message_then_disconnect(envapi: EnvApi) -> None:
    with attached(envapi) as sock:
        sock.sendall(pack_header(MessageType.RESET, 100) + b"\x00" * 10)
    assert_still_serving(envapi)


def test_client_sees_the_server_going_away(tmp_path: Path) -> None:
    with run_envapi(tmp_path) as server:
        envs = netgym.make_vec("CartPole-v1", 2, url=server.url, token=server.token)
        envs.reset(seed=0)
        server.process.send_signal(signal.SIGINT)
        server.process.wait(15)
    with pytest.raises(NetgymError, match="envapi"):
        envs.step(np.array([0, 0]))


def test_an_envapi_killed_outright_takes_its_sessions_with_it(tmp_path: Path) -> None:
    # SIGKILL: no clean stop ends them, and their parent, the forkserver, lives on.
    with run_envapi(tmp_path) as server:
        envs = netgym.make_vec("CartPole-v1", 2, url=server.url, token=server.token)
        envs.reset(seed=0)
        session_pid = session_status(server, envs.session_id)["pid"]
        processes = [session_pid, *descendants(session_pid)]
        server.process.kill()
        server.process.wait(15)
        wait_until_gone(processes)
        with pytest.raises(
            SessionEndedError, match=r"has ended: the envapi that served it is gone \(killed\?\)$"
        ):
            envs.step(np.array([0, 0]))


def test_a_session_stuck_in_native_code_goes_too_when_the_envapi_is_killed(
    tmp_path: Path,
) -> None:
    with run_envapi(tmp_path, step_timeout_s="1") as server:
        envs = netgym.make_vec("netgym-test/CHang-v0", 1, url=server.url, token=server.token)
        envs.reset(seed=0)
        session_pid = session_status(server, envs.session_id)["pid"]
        envs.step_async(np.array([1]))  # env 0, in the session process: hours in C
        time.sleep(0.5)
        server.process.kill()
        server.process.wait(15)
        wait_until_gone([session_pid], timeout_s=1 + signals.STUCK_GRACE_S + 5)
        envs.close()


def test_welcome_describes_the_session(envapi: EnvApi) -> None:
    with raw_connection(envapi) as sock:
        _message_type, body = hello(sock, open_session(envapi, "ALE/Pong-v5"), envapi.token)
        welcome = unpack_value(body)
        assert welcome["num_envs"] == 2 and welcome["autoreset_mode"] == "same_step"
        assert welcome["observation_space"]["shape"] == [210, 160, 3]


# --- clients that vanish, envs that hang where signals cannot reach -------------------------------


def reset_abruptly(sock: socket.socket) -> None:
    """Close with a TCP reset, as a crashed client host would: later sends fail at once."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def wait_for_end(envapi: EnvApi, session_id: str, timeout_s: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while (status := session_status(envapi, session_id))["state"] != "ended":
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    return status


def test_client_vanishing_before_its_welcome_just_disconnects(envapi: EnvApi) -> None:
    session_id = open_session(envapi)
    sock = socket.create_connection(("127.0.0.1", envapi.data_port), timeout=10)
    send_frame(
        sock,
        MessageType.HELLO,
        [pack_value({"protocol": 1, "session_id": session_id, "token": envapi.token})],
    )
    reset_abruptly(sock)
    status = wait_for_end(envapi, session_id)
    assert status["end_reason"] == "the client disconnected"
    assert status["end_error"] is None
    assert_still_serving(envapi)


@pytest.mark.parametrize("sent", [3, 8 + 4], ids=["part-of-a-header", "part-of-a-body"])
def test_client_gone_in_the_middle_of_a_frame_ends_with_connection_lost(
    envapi: EnvApi, sent: int
) -> None:
    session_id = open_session(envapi)
    with raw_connection(envapi) as sock:
        assert hello(sock, session_id, envapi.token)[0] == MessageType.WELCOME
        step = pack_header(MessageType.STEP, 16) + np.array([0, 1], "<i8").tobytes()
        sock.sendall(step[:sent])
    status = wait_for_end(envapi, session_id)
    assert status["end_error"]["code"] == "connection_lost", status


def test_client_vanishing_before_an_error_reaches_it_just_disconnects(envapi: EnvApi) -> None:
    sock = socket.create_connection(("127.0.0.1", envapi.data_port), timeout=10)
    session_id = open_session(envapi, "netgym-test/SlowRaise-v0")
    assert hello(sock, session_id, envapi.token)[0] == MessageType.WELCOME
    send_frame(sock, MessageType.RESET, [pack_value({"seed": 0})])
    expect(*recv_frame(sock, 1 << 24), MessageType.RESET_RESULT)
    send_frame(sock, MessageType.STEP, [np.array([0, 1], "<i8").tobytes()])
    reset_abruptly(sock)  # gone while the env takes half a second to raise
    status = wait_for_end(envapi, session_id)
    assert status["end_reason"] == "the client disconnected"
    assert status["end_error"] is None


def test_info_that_cannot_be_sent_is_an_error_and_the_session_goes_on(envapi: EnvApi) -> None:
    with netgym.make_vec("netgym-test/BadInfo-v0", 2, url=envapi.url, token=envapi.token) as envs:
        envs.reset(seed=0)
        with pytest.raises(ProtocolError, match=r"info cannot be sent.*4300 digits"):
            envs.step(np.array([0, 1]))
        obs, *_ = envs.step(np.array([0, 0]))
        assert obs.ravel().tolist() == [2.0, 2.0]


def test_an_observation_or_reward_an_env_cannot_give_names_the_env(envapi: EnvApi) -> None:
    with netgym.make_vec("netgym-test/BadObs-v0", 3, url=envapi.url, token=envapi.token) as envs:
        envs.reset(seed=0)
        with pytest.raises(EnvError) as raised:
            envs.step(np.array([0, 0, 1]))
        assert raised.value.message.startswith(
            "env 2: the env returned an observation that does not fit its observation space "
            "Box(0.0, 1000.0, (1,), float32)"
        ), raised.value.message
        assert raised.value.details["env_index"] == 2
    bad_dict = "netgym-test/BadDictObs-v0"
    with netgym.make_vec(bad_dict, 2, url=envapi.url, token=envapi.token) as envs:
        envs.reset(seed=0)
        envs.step(np.array([0, 0]))  # past Gymnasium's checker, which checks a first step
        with pytest.raises(EnvError) as raised:  # not the client's action at fault
            envs.step(np.array([0, 1]))
        assert raised.value.message.startswith(
            "env 1: the env returned an observation that does not fit its observation space "
        ), raised.value.message
        assert "missing keys ['lives']" in raised.value.message
    with netgym.make_vec("netgym-test/BadReward-v0", 2, url=envapi.url, token=envapi.token) as envs:
        envs.reset(seed=0)
        with pytest.raises(EnvError, match=r"^env 0: the env raised TypeError: float\(\) arg"):
            envs.step(np.array([1, 0]))
        envs.step(np.array([0, 0]))  # the session goes on


@pytest.mark.parametrize("num_envs", [1, 2], ids=["in-session-process", "in-worker"])
def test_delete_ends_a_session_hung_in_python_at_once(envapi: EnvApi, num_envs: int) -> None:
    envs = netgym.make_vec("netgym-test/Hang-v0", num_envs, url=envapi.url, token=envapi.token)
    with envs:
        envs.reset(seed=0)
        session_pid = session_status(envapi, envs.session_id)["pid"]
        processes = [session_pid, *descendants(session_pid)]
        envs.step_async(np.full(num_envs, 1))
        time.sleep(0.5)  # the step hangs (in time.sleep) in the session process or its worker
        headers = {"Authorization": f"Bearer {envapi.token}"}
        with httpx.Client(headers=headers) as rest:
            started = time.monotonic()
            reply = rest.delete(f"{envapi.url}/v1/sessions/{envs.session_id}")
            assert time.monotonic() - started < 4.9  # not the 5 s grace, then SIGKILL
        assert reply.json()["state"] == "ended"
        assert reply.json()["end_reason"] == "closed through the REST API"
        with pytest.raises(SessionEndedError, match="ended by the envapi"):
            envs.step_wait()
        wait_until_gone(processes)


def test_delete_of_a_session_deaf_to_sigterm_records_why_it_ended(tmp_path: Path) -> None:
    # Hung in C code (or blocked sending to a client that reads nothing), the session
    # cannot say why it ends before the 5 s grace is over and it is killed. (A step
    # timeout far beyond that: the watchdog must not kill it first.)
    with run_envapi(tmp_path, step_timeout_s="60") as envapi:
        kwargs = {"url": envapi.url, "token": envapi.token}
        with netgym.make_vec("netgym-test/CHang-v0", 1, **kwargs) as envs:
            envs.reset(seed=0)
            envs.step_async(np.array([1]))
            time.sleep(0.5)
            headers = {"Authorization": f"Bearer {envapi.token}"}
            reply = httpx.delete(
                f"{envapi.url}/v1/sessions/{envs.session_id}", headers=headers, timeout=60
            )
            assert reply.json()["end_reason"] == "closed through the REST API"
            assert reply.json()["end_error"] == {
                "code": "session_ended",
                "message": f"session {envs.session_id} ended: closed through the REST API",
                "details": {},
            }
        assert_still_serving(envapi)


def test_session_hung_in_c_code_is_killed_past_its_deadline(tmp_envapi: EnvApi) -> None:
    kwargs = {"url": tmp_envapi.url, "token": tmp_envapi.token}
    with netgym.make_vec("netgym-test/CHang-v0", 1, **kwargs) as envs:
        envs.reset(seed=0)
        session_pid = session_status(tmp_envapi, envs.session_id)["pid"]
        started = time.monotonic()
        with pytest.raises(WorkerTimeoutError, match=r"closing its envs, for more than 2 s"):
            envs.step(np.array([1]))
        assert time.monotonic() - started < 15
        wait_until_gone([session_pid])
        status = session_status(tmp_envapi, envs.session_id)
        assert status["end_error"]["code"] == "worker_timeout"
        assert status["end_reason"].endswith("killed")
    assert_still_serving(tmp_envapi)


def test_a_session_whose_env_hangs_in_close_is_killed_and_its_slot_freed(
    tmp_envapi: EnvApi,
) -> None:
    kwargs = {"url": tmp_envapi.url, "token": tmp_envapi.token}
    envs = netgym.make_vec("netgym-test/HangOnClose-v0", 1, **kwargs)
    envs.reset(seed=0)
    session_pid = session_status(tmp_envapi, envs.session_id)["pid"]
    envs._connection.abort()  # the client vanishes: the session closes its envs, which hang
    # 5 s for the workers, the 2 s step timeout, the watchdog's 5 s margin, and its period.
    wait_until_gone([session_pid], timeout_s=20)
    # It never said it ended: the envapi sees it once it has reaped it.
    status = wait_for_end(tmp_envapi, envs.session_id)
    assert status["end_reason"].endswith("killed")
    envs.close()
    assert_still_serving(tmp_envapi)


def test_client_timeout_closes_the_socket_and_close_ends_the_session(envapi: EnvApi) -> None:
    envs = netgym.make_vec(
        "netgym-test/Hang-v0", 1, url=envapi.url, token=envapi.token, timeout_s=1.0
    )
    envs.reset(seed=0)
    with pytest.raises(ConnectionLostError, match="no reply within 1 s"):
        envs.step(np.array([1]))
    assert envs._connection.closed
    assert session_status(envapi, envs.session_id)["state"] != "ended"  # it hangs, server-side
    envs.close()  # no data connection left: DELETE
    assert session_status(envapi, envs.session_id)["state"] == "ended"


def test_refused_hello_leaves_no_socket_open(
    envapi: EnvApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = open_session(envapi)
    opened: list[socket.socket] = []
    real_connect = socket.create_connection

    def connect(*args: Any, **kwargs: Any) -> socket.socket:
        opened.append(real_connect(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(socket, "create_connection", connect)
    with pytest.raises(AuthenticationError):
        DataConnection("127.0.0.1", envapi.data_port, session_id, "wrong", 10.0)
    assert len(opened) == 1 and opened[0].fileno() == -1


def test_ended_sessions_keep_no_file_descriptors(envapi: EnvApi) -> None:
    def count() -> int:
        return len(os.listdir(f"/proc/{envapi.process.pid}/fd"))

    with netgym.make("CartPole-v1", url=envapi.url, token=envapi.token):
        pass  # whatever the first session opens for good
    before = count()
    for _ in range(20):
        netgym.make_vec("CartPole-v1", 1, url=envapi.url, token=envapi.token).close()
    assert count() - before < 10  # not 2 pipes for every ended session


def test_concurrent_opens_respect_the_session_limit(tmp_envapi: EnvApi) -> None:
    headers = {"Authorization": f"Bearer {tmp_envapi.token}"}

    def post(_: int) -> httpx.Response:
        return httpx.post(
            f"{tmp_envapi.url}/v1/sessions",
            json={"env_id": "CartPole-v1"},
            headers=headers,
            timeout=60,
        )

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(post, range(8)))
    opened = [r.json()["session_id"] for r in replies if r.status_code == 201]
    try:
        assert len(opened) == 3  # NETGYM_MAX_SESSIONS
        assert {r.json()["error"]["code"] for r in replies if r.status_code != 201} == {
            "limit_exceeded"
        }
        assert len(tmp_envapi.live_sessions()) <= 3
    finally:
        for session_id in opened:
            httpx.delete(f"{tmp_envapi.url}/v1/sessions/{session_id}", headers=headers, timeout=60)
