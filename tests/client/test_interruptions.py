"""A request cut short on the client (Ctrl-C, a garbled frame) never shifts later replies."""

from __future__ import annotations

import http.server
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import netgym
from netgym.client.rest import RestClient
from netgym.errors import (
    ConnectionLostError,
    InvalidActionError,
    InvalidRequestError,
    NetgymError,
    ServerUnavailableError,
    SessionEndedError,
    SessionStateError,
    UnknownEnvError,
    UnsupportedSpaceError,
)
from netgym.protocol import MessageType
from netgym.protocol.frames import send_frame
from netgym.sb3 import is_retryable
from tests.servers import EnvApi, wait_for


def test_ctrl_c_while_waiting_closes_the_env_instead_of_shifting_replies(
    tmp_envapi: EnvApi, ctrl_c_at_next_reply: Callable[[], None]
) -> None:
    envs = netgym.make_vec("CartPole-v1", 2, url=tmp_envapi.url, token=tmp_envapi.token)
    envs.reset(seed=0)
    ctrl_c_at_next_reply()
    with pytest.raises(KeyboardInterrupt):
        envs.step(np.ones(2, np.int64))
    # The reply to that step is unread: no later call may take it for its own.
    with pytest.raises(
        ConnectionLostError,
        match=r"cannot call step\(\): an earlier call was cut short by KeyboardInterrupt, and "
        r"this env's connection went with it .*; make a new env",
    ):
        envs.step(np.ones(2, np.int64))
    envs.close()
    assert envs.session_id not in tmp_envapi.live_session_ids()


def test_a_reply_of_the_wrong_type_is_a_lost_connection(tmp_envapi: EnvApi) -> None:
    envs = netgym.make_vec("CartPole-v1", 2, url=tmp_envapi.url, token=tmp_envapi.token)
    envs.reset(seed=0)
    # A PING the client does not know it sent: its PONG comes before the step's reply.
    send_frame(envs._connection.sock, MessageType.PING, [b""])
    with pytest.raises(ConnectionLostError, match="out of step: expected STEP_RESULT, got PONG"):
        envs.step(np.ones(2, np.int64))
    with pytest.raises(
        ConnectionLostError,
        # Ended, once the server has seen the client go; else broken, as far as it knows.
        match=r"cannot call step\(\): this env's (session has ended|connection broke) \(.*out of "
        r"step.*; make a new",
    ):
        envs.step(np.ones(2, np.int64))
    envs.close()
    assert envs.session_id not in tmp_envapi.live_session_ids()


def test_calls_after_the_session_ended_raise_its_end_again(tmp_envapi: EnvApi) -> None:
    envs = netgym.make_vec("CartPole-v1", 2, url=tmp_envapi.url, token=tmp_envapi.token)
    envs.reset(seed=0)
    RestClient(tmp_envapi.url, tmp_envapi.token).call("DELETE", f"/v1/sessions/{envs.session_id}")
    with pytest.raises(SessionEndedError) as first:
        envs.step(np.ones(2, np.int64))
    # Code that catches the session's end catches it on every later call too.
    with pytest.raises(SessionEndedError) as again:
        envs.reset()
    assert again.value.message == (
        f"cannot call reset(): this env's session has ended ({first.value.message}); make a "
        "new env (netgym.sb3.ReconnectingVecEnv does that itself)"
    )
    envs.close()


def test_a_call_while_another_thread_closes_the_env_says_so(tmp_envapi: EnvApi) -> None:
    envs = netgym.make_vec("CartPole-v1", 2, url=tmp_envapi.url, token=tmp_envapi.token)
    envs.close()
    # As close() from another thread holds the env while it ends the session.
    with (
        envs._in_call,
        pytest.raises(SessionStateError, match="this env was closed by another thread"),
    ):
        envs.reset()


def test_a_session_whose_spaces_the_client_cannot_read_is_closed(
    tmp_envapi: EnvApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable(spec: Any) -> Any:
        raise UnsupportedSpaceError("a space from a newer server")

    monkeypatch.setattr("netgym.client.vector.unpack_space", unreadable)
    before = tmp_envapi.live_session_ids()
    with pytest.raises(UnsupportedSpaceError) as caught:
        netgym.make_vec("CartPole-v1", 2, url=tmp_envapi.url, token=tmp_envapi.token)
    # The traceback keeps the half-made env alive: the session ended anyway.
    assert caught.traceback is not None
    assert tmp_envapi.live_session_ids() == before


def test_the_data_port_given_for_the_rest_url_is_named_as_such(tmp_envapi: EnvApi) -> None:
    url = f"http://127.0.0.1:{tmp_envapi.data_port}"
    with pytest.raises(ServerUnavailableError, match=r"not the envapi's REST API.*data port"):
        netgym.make("CartPole-v1", url=url, token=tmp_envapi.token)


class _Answers(http.server.BaseHTTPRequestHandler):
    """Answers every request with the server's ``status`` and ``body``."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def answering_server() -> Iterator[Callable[[int, bytes], str]]:
    """A server that answers every request alike; call it with the status and body."""
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()

        def answering(status: int, body: bytes) -> str:
            server.answer = (status, body)  # type: ignore[attr-defined]
            return f"http://127.0.0.1:{server.server_address[1]}"

        yield answering
        server.shutdown()


def test_a_web_server_that_is_not_the_envapi_is_named_as_such(
    answering_server: Callable[[int, bytes], str],
) -> None:
    url = answering_server(200, b"<html>a web page</html>")
    with pytest.raises(ServerUnavailableError, match="is not the envapi's REST API"):
        RestClient(url, None).call("GET", "/v1/health")


def test_a_proxy_with_nothing_behind_it_is_a_service_down_which_reconnects_retry(
    answering_server: Callable[[int, bytes], str],
) -> None:
    url = answering_server(502, b"<html><h1>502 Bad Gateway</h1></html>")
    with pytest.raises(ServerUnavailableError) as caught:
        netgym.make("CartPole-v1", url=url)
    assert caught.value.message.startswith(
        f"{url} answered HTTP 502 Bad Gateway, not the envapi: is the envapi behind it down "
        "or restarting?"
    )
    assert is_retryable(caught.value)


def test_an_http_error_of_another_server_is_named_as_such(
    answering_server: Callable[[int, bytes], str],
) -> None:
    url = answering_server(501, b"Unsupported method")
    with pytest.raises(
        ServerUnavailableError,
        match=r"is not the envapi's REST API \(it answered HTTP 501 Not Implemented\)",
    ):
        netgym.make("CartPole-v1", url=url)


def test_a_proxys_own_refusal_is_not_a_service_down(
    answering_server: Callable[[int, bytes], str],
) -> None:
    url = answering_server(413, b"<html>413 Request Entity Too Large</html>")
    with pytest.raises(NetgymError, match=r"answered HTTP 413 .*a proxy in front") as caught:
        netgym.make("CartPole-v1", url=url)
    assert not is_retryable(caught.value)  # no reconnect waits on a proxy's setting


@pytest.mark.parametrize(
    ("call", "missing"),
    [
        (lambda url: netgym.make("CartPole-v1", url=url), "'session_id', 'data_port'"),
        (lambda url: netgym.list_envs(url=url), "'envs'"),
        (lambda url: netgym.describe_env("CartPole-v1", url=url), "'env_id'"),
    ],
    ids=["make", "list_envs", "describe_env"],
)
def test_json_that_is_not_the_envapis_answer_is_named_as_such(
    answering_server: Callable[[int, bytes], str], call: Callable[[str], Any], missing: str
) -> None:
    url = answering_server(200, b'{"ok": true}')
    with pytest.raises(ServerUnavailableError, match="is not the envapi's REST API") as caught:
        call(url)
    assert f"has no {missing}" in caught.value.message


def test_describe_env_takes_an_id_as_it_is(tmp_envapi: EnvApi) -> None:
    # Not part of the URL's query or fragment: an unknown id, not CartPole-v1's description.
    for env_id in ("CartPole-v1?x=1", "CartPole-v1#", "Cart Pole"):
        with pytest.raises(UnknownEnvError):
            netgym.describe_env(env_id, url=tmp_envapi.url, token=tmp_envapi.token)
    described = netgym.describe_env("ALE/Pong-v5", url=tmp_envapi.url, token=tmp_envapi.token)
    assert described["env_id"] == "ALE/Pong-v5"


def test_a_server_that_drops_the_connection_may_have_stopped_meanwhile() -> None:
    # What a client sees of an envapi killed while it answers, or of a port that
    # resets every connection.
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def reset_one() -> None:
            connection, _ = listener.accept()
            connection.recv(1024)
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()

        threading.Thread(target=reset_one, daemon=True).start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(
            ServerUnavailableError,
            match=r"dropped the connection with no HTTP reply to GET /v1/health: it stopped or "
            r"restarted meanwhile, or what answers there is not the envapi's REST API",
        ):
            RestClient(url, None).call("GET", "/v1/health")


def test_another_netgym_service_or_a_url_without_scheme_is_named_as_such(
    tmp_envapi: EnvApi,
) -> None:
    # The emulator service's port, say: a netgym service, without the envapi's paths.
    with pytest.raises(
        ServerUnavailableError, match=r"is not the envapi's REST API \(it has no POST /v2/"
    ):
        RestClient(tmp_envapi.url, tmp_envapi.token).call("POST", "/v2/sessions", {})
    with pytest.raises(ServerUnavailableError, match=r"write it with its scheme, e\.g\. http://"):
        netgym.make("CartPole-v1", url=tmp_envapi.url.removeprefix("http://"))


def step_gated_envs_in_a_thread(
    envs: netgym.RemoteVectorEnv,
) -> tuple[threading.Thread, list[Any]]:
    """Reset ``netgym-test/Gate-v0`` envs and, in a thread, a step on which env 1 waits
    for its gate file; returns once the thread is in the call, with the list its
    step's result or exception goes into."""
    envs.reset(seed=0)
    outcome: list[Any] = []

    def step() -> None:
        try:
            outcome.append(envs.step(np.array([0, 1])))
        except BaseException as exc:
            outcome.append(exc)

    other = threading.Thread(target=step)
    other.start()
    wait_for(envs._in_call.locked, 30)
    time.sleep(0.3)  # past step_async, into step_wait's wait for the reply
    return other, outcome


def test_a_second_thread_in_a_call_is_refused_not_given_the_other_ones_reply(
    envapi: EnvApi, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    kwargs = {"url": envapi.url, "token": envapi.token, "env_kwargs": {"gate": str(gate)}}
    with netgym.make_vec("netgym-test/Gate-v0", 2, **kwargs) as envs:
        other, outcome = step_gated_envs_in_a_thread(envs)
        with pytest.raises(SessionStateError, match="another thread is in a call on this env"):
            envs.step(np.array([0, 0]))
        gate.touch()
        other.join(30)
        [(obs, rewards, *_)] = outcome  # the other thread's own reply, whole
        assert obs.tolist() == [[1.0], [1.0]] and rewards.tolist() == [1.0, 1.0]


def test_close_from_another_thread_wakes_the_call_and_ends_the_session(
    envapi: EnvApi, tmp_path: Path
) -> None:
    never = str(tmp_path / "never")
    kwargs = {"url": envapi.url, "token": envapi.token, "env_kwargs": {"gate": never}}
    envs = netgym.make_vec("netgym-test/Gate-v0", 2, **kwargs)
    other, outcome = step_gated_envs_in_a_thread(envs)
    envs.close()
    other.join(30)
    assert outcome and isinstance(outcome[0], SessionStateError)
    assert "closed by another thread during the call" in str(outcome[0])
    assert isinstance(outcome[0].__cause__, ConnectionLostError)  # woken by the closed socket
    assert envs.session_id not in envapi.live_session_ids()
    with pytest.raises(SessionStateError, match="this env is closed; make a new one"):
        envs.step(np.array([0, 0]))


def test_misuses_of_one_env_say_what_to_do(tmp_envapi: EnvApi) -> None:
    kwargs = {"url": tmp_envapi.url, "token": tmp_envapi.token}
    with pytest.raises(InvalidRequestError, match="render_mode: the envapi's envs run on"):
        netgym.make("CartPole-v1", render_mode="rgb_array", **kwargs)
    with pytest.raises(InvalidRequestError, match="render_mode: the envapi's envs run on"):
        netgym.make_vec("CartPole-v1", 2, render_mode="rgb_array", **kwargs)
    with pytest.raises(InvalidRequestError, match="autoreset_mode='sometimes': use"):
        netgym.make_vec("CartPole-v1", 2, autoreset_mode="sometimes", **kwargs)
    with pytest.raises(InvalidRequestError, match=r"env_kwargs=\{'max_episode_steps': 10\}"):
        netgym.make("CartPole-v1", max_episode_steps=10, **kwargs)  # as gym.make takes it
    with pytest.raises(InvalidRequestError, match=r"frameskip: not an argument"):
        netgym.make_vec("ALE/Pong-v5", 2, frameskip=1, **kwargs)
    with netgym.make_vec("CartPole-v1", 2, autoreset_mode="next_step", **kwargs) as envs:
        assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
        with pytest.raises(InvalidRequestError, match=r"an int 0 or more.*got -1"):
            envs.reset(seed=-1)  # as the list form, [-1, 0], is
    with pytest.raises(SessionStateError, match=r"set_timeout\(\): this env is closed"):
        envs.set_timeout(5)
    with netgym.make(
        "CartPole-v1", url=f" {tmp_envapi.url}\n", token=f"{tmp_envapi.token}\n"
    ) as env:  # read from files: their line ends are no part of them
        for seed in (-1, 1.0, [1]):
            with pytest.raises(InvalidRequestError, match=r"seed must be None or an int 0 or more"):
                env.reset(seed=seed)  # type: ignore[arg-type]
    env = netgym.make("CartPole-v1", **kwargs)
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match=r"action has shape \(2,\), expected \(\)"):
        env.step(np.array([0, 1]))
    with pytest.raises(NotImplementedError, match="a remote env does not render"):
        env.render()
    env.close()
    with pytest.raises(SessionStateError, match="this env is closed; make a new one"):
        env.step(0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_envs": 2.0}, r"num_envs=2\.0: give a whole number of envs, 1 or more"),
        ({"num_envs": "2"}, r"num_envs='2': give a whole number"),
        ({"num_envs": 0}, r"num_envs=0: give a whole number"),
        ({"timeout_s": -1}, r"timeout_s=-1: give a number of seconds from 0\.001 to 1,000,000"),
        ({"timeout_s": 0}, r"timeout_s=0: give a number of seconds"),
        ({"timeout_s": None}, r"timeout_s=None: give a number of seconds"),
        ({"open_timeout_s": float("nan")}, r"open_timeout_s=nan: give a number of seconds"),
    ],
    ids=["float", "str", "zero", "negative-timeout", "zero-timeout", "no-timeout", "nan-timeout"],
)
def test_bad_arguments_are_refused_before_a_session_opens(
    tmp_envapi: EnvApi, kwargs: dict[str, Any], message: str
) -> None:
    kwargs = {"num_envs": 1, **kwargs}
    with pytest.raises(InvalidRequestError, match=message):
        netgym.make_vec("CartPole-v1", url=tmp_envapi.url, token=tmp_envapi.token, **kwargs)
    assert tmp_envapi.live_session_ids() == set()


def test_one_env_says_what_to_do_in_its_own_terms(tmp_envapi: EnvApi) -> None:
    kwargs = {"url": tmp_envapi.url, "token": tmp_envapi.token}
    with pytest.raises(InvalidRequestError, match=r"netgym\.make makes one env: .*make_vec"):
        netgym.make("CartPole-v1", num_envs=2, **kwargs)
    with pytest.raises(InvalidRequestError, match="one env does not reset itself"):
        netgym.make("CartPole-v1", autoreset_mode="next_step", **kwargs)
    wrappers = [{"name": "time_limit", "kwargs": {"max_episode_steps": 1}}]
    with netgym.make("CartPole-v1", wrappers=wrappers, **kwargs) as env:
        env.reset(seed=0)
        assert env.step(0)[3]  # truncated
        with pytest.raises(SessionStateError, match=r"^the episode has ended .*call reset\(\)"):
            env.step(0)
    with pytest.raises(SessionStateError, match=r"^cannot call step\(\): this env is closed"):
        env.step(0)
    with (
        netgym.make_vec("CartPole-v1", 2, timeout_s=np.int64(30), **kwargs) as envs,
        pytest.raises(NotImplementedError, match="a remote env does not render"),
    ):
        envs.render()


def test_a_reply_that_never_comes_says_the_session_is_busy_or_hung(envapi: EnvApi) -> None:
    """On an envapi whose step timeout (60 s) cannot end the session before the
    client asks about it."""
    kwargs = {"url": envapi.url, "token": envapi.token, "timeout_s": 1.0}
    with netgym.make_vec("netgym-test/Hang-v0", 1, **kwargs) as envs:
        envs.reset(seed=0)
        started = time.monotonic()
        with pytest.raises(ConnectionLostError, match="it is still attached on the server, busy"):
            envs.step(np.array([1]))
        assert time.monotonic() - started < 3.9  # not 3 s more, as for a broken connection
