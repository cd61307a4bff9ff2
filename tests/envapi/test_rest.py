"""The REST control API: health, env listing, sessions, tokens, limits."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import httpx
import numpy as np
import pytest

import netgym
from netgym.errors import (
    AuthenticationError,
    InvalidRequestError,
    LimitExceededError,
    MessageTooLargeError,
    NetgymError,
    ServerUnavailableError,
    UnknownEnvError,
)
from netgym_envapi.settings import Settings
from tests.servers import EnvApi, run_envapi, wait_for


def client(envapi: EnvApi, token: str | None = "default") -> httpx.Client:
    token = envapi.token if token == "default" else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=envapi.url, headers=headers, timeout=60)


def test_health_checks_the_data_port_and_workers(envapi: EnvApi) -> None:
    reply = client(envapi, token=None).get("/v1/health")
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "ok"
    assert body["data_port"] == envapi.data_port
    assert body["checks"]["workers"] == "ok"
    assert body["checks"]["data_port_ping_ms"] > 0


def test_lists_atari_and_classic_envs(envapi: EnvApi) -> None:
    body = client(envapi).get("/v1/envs").json()
    ids = {e["env_id"]: e["family"] for e in body["envs"]}
    assert ids["ALE/Pong-v5"] == "atari"
    assert ids["CartPole-v1"] == "classic_control"
    assert len([i for i in ids if i.startswith("ALE/")]) > 100
    assert "atari" in body["wrappers"]
    # NETGYM_ENV_MODULES' envs, registered with an entry point string or a class.
    assert ids["netgym-test/Buttons-v0"] == ids["netgym-test/ByClass-v0"] == "custom"


def test_the_client_lists_the_envs_and_describes_one(envapi: EnvApi) -> None:
    ids = netgym.list_envs(url=envapi.url, token=envapi.token)
    assert "CartPole-v1" in ids and "ALE/Pong-v5" in ids
    described = netgym.describe_env("ALE/Pong-v5", url=envapi.url, token=envapi.token)
    assert described["action_meanings"][:2] == ["NOOP", "FIRE"]
    assert described["env_revision"] is None  # only NES games have one


def test_describes_an_env_with_its_spaces(envapi: EnvApi) -> None:
    body = client(envapi).get("/v1/envs/ALE/Pong-v5").json()
    assert body["observation_space"] == {
        "type": "box",
        "dtype": "uint8",
        "shape": [210, 160, 3],
        "low": 0,
        "high": 255,
    }
    assert body["action_space"]["type"] == "discrete"
    assert body["action_meanings"] == ["NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE"]


def test_a_remote_env_names_its_actions_where_the_server_env_does(envapi: EnvApi) -> None:
    kwargs = {"url": envapi.url, "token": envapi.token}
    import ale_py

    gym.register_envs(ale_py)
    local = gym.make("ALE/Breakout-v5")
    try:
        expected = local.unwrapped.get_action_meanings()  # type: ignore[attr-defined]
    finally:
        local.close()
    with netgym.make("ALE/Breakout-v5", wrappers=["atari"], **kwargs) as breakout:
        assert breakout.get_action_meanings() == expected == ["NOOP", "FIRE", "RIGHT", "LEFT"]
    with netgym.make_vec("CartPole-v1", 2, **kwargs) as cartpole:
        assert cartpole.get_action_meanings() is None


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/envs/NoSuchEnv-v0", None, 404, "unknown_env"),
        ("/v1/sessions", {"env_id": "CartPol-v1"}, 404, "unknown_env"),
        ("/v1/sessions", {"env_id": "CartPole-v1", "num_envs": 0}, 422, "invalid_request"),
        ("/v1/sessions", {"env_id": "CartPole-v1", "num_envs": -3}, 422, "invalid_request"),
        ("/v1/sessions", {"env_id": "CartPole-v1", "num_envs": 10**6}, 429, "limit_exceeded"),
        (
            "/v1/sessions",
            {"env_id": "CartPole-v1", "wrappers": ["teleport"]},
            422,
            "invalid_request",
        ),
        (
            "/v1/sessions",
            {"env_id": "CartPole-v1", "wrappers": [{"name": "frame_stack", "kwargs": {"size": 2}}]},
            422,
            "invalid_request",
        ),
        (
            "/v1/sessions",
            {"env_id": "CartPole-v1", "env_kwargs": {"gravity": 1}},
            422,
            "invalid_request",
        ),
        ("/v1/sessions", {"num_envs": 2}, 422, "invalid_request"),
        ("/v1/sessions", {"env_id": "CartPole-v1", "num_envs": "2"}, 422, "invalid_request"),
        ("/v1/sessions", {"env_id": "CartPole-v1", "num_env": 2}, 422, "invalid_request"),
        (
            "/v1/sessions",
            {"env_id": "CartPole-v1", "autoreset_mode": "sometimes"},
            422,
            "invalid_request",
        ),
        ("/v1/sessions/0123456789abcdef", None, 404, "session_not_found"),
        ("/v2/nothing", None, 404, "not_found"),
        ("/v1/health", {}, 405, "method_not_allowed"),
    ],
    ids=[
        "unknown-env-describe",
        "unknown-env-open",
        "zero-envs",
        "negative-envs",
        "too-many-envs",
        "unknown-wrapper",
        "wrapper-kwarg",
        "bad-env-kwarg",
        "no-env-id",
        "num-envs-text",
        "unknown-key",
        "bad-autoreset",
        "no-such-session",
        "no-such-path",
        "wrong-method",
    ],
)
def test_bad_requests_get_typed_errors(
    envapi: EnvApi, path: str, body: dict | None, status: int, code: str
) -> None:
    with client(envapi) as http:
        reply = http.post(path, json=body) if body is not None else http.get(path)
        assert reply.status_code == status, reply.text
        assert reply.json()["error"]["code"] == code
        assert reply.json()["error"]["message"]
        assert http.get("/v1/health").status_code == 200


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b'{"env_id": "CartPole-v1"}', "text/plain", "with Content-Type: application/json"),
        (b'{"env_id": "CartPole-v1"}', None, "with Content-Type: application/json"),
        (b'{"env_id": "CartPole-v1", "x": "\xff"}', "application/json", "as JSON in UTF-8"),
        (b'{"env_id": ', "application/json", "JSON decode error"),
    ],
    ids=["text-plain", "no-content-type", "not-utf-8", "not-json"],
)
def test_a_body_that_is_not_json_is_an_invalid_request(
    envapi: EnvApi, content: bytes, content_type: str | None, message: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    with client(envapi) as http:
        reply = http.post("/v1/sessions", content=content, headers=headers)
        assert reply.status_code == 422, reply.text
        error = reply.json()["error"]
        assert error["code"] == "invalid_request" and message in error["message"], error


@pytest.mark.parametrize("key", ["env_kwargs", "wrappers"])
def test_kwargs_nested_too_deep_are_an_invalid_request(envapi: EnvApi, key: str) -> None:
    deep = "[" * 600 + "]" * 600  # JSON parses it; the session's process could not take it
    value = (
        f'{{"x": {deep}}}'
        if key == "env_kwargs"
        else f'[{{"name": "time_limit", "kwargs": {{"max_episode_steps": {deep}}}}}]'
    )
    content = f'{{"env_id": "CartPole-v1", "{key}": {value}}}'
    with client(envapi) as http:
        reply = http.post(
            "/v1/sessions", content=content, headers={"Content-Type": "application/json"}
        )
        assert reply.status_code == 422, reply.text
        error = reply.json()["error"]
        assert error["code"] == "invalid_request" and "32 levels deep" in error["message"], error


def test_a_list_of_more_wrappers_than_any_env_stacks_is_an_invalid_request(
    envapi: EnvApi,
) -> None:
    with client(envapi) as http:
        reply = http.post(
            "/v1/sessions",
            json={"env_id": "CartPole-v1", "wrappers": ["atari"] * 65},
        )
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == "invalid_request" and "at most 64 items" in error["message"], error


def test_the_atari_wrapper_on_another_env_says_what_it_is_for(envapi: EnvApi) -> None:
    with pytest.raises(
        InvalidRequestError, match=r"for ALE games \(ALE/\.\.\.\); CartPole-v1 is a"
    ):
        netgym.make("CartPole-v1", wrappers=["atari"], url=envapi.url, token=envapi.token)


def test_spaces_too_big_to_describe_are_refused(envapi: EnvApi) -> None:
    """CartPole's bounds differ per element: a stack of 250,000 is 2 million numbers,
    which the main process would read and send in its event loop."""
    stack = [{"name": "frame_stack", "kwargs": {"stack_size": 250_000}}]
    with pytest.raises(InvalidRequestError, match=r"spaces take \d+ MiB to describe, over the 16"):
        netgym.make("CartPole-v1", wrappers=stack, url=envapi.url, token=envapi.token)


def test_observations_too_large_to_hold_are_refused_before_they_are_made(envapi: EnvApi) -> None:
    """A few bytes of request must not make the envapi hold gigabytes."""
    server = {"url": envapi.url, "token": envapi.token}
    stack = [{"name": "frame_stack", "kwargs": {"stack_size": 3000}}]
    with pytest.raises(InvalidRequestError, match=r"'frame_stack' would make each observation 288"):
        netgym.make("ALE/Pong-v5", wrappers=stack, **server)
    screen = [{"name": "atari", "kwargs": {"screen_size": 100_000}}]
    with pytest.raises(InvalidRequestError, match=r"'atari' would make each observation 9,536"):
        netgym.make("ALE/Pong-v5", wrappers=screen, **server)
    stack = [{"name": "frame_stack", "kwargs": {"stack_size": 10**400}}]
    with pytest.raises(InvalidRequestError, match=r"each observation over 2\*\*60 bytes"):
        netgym.make("ALE/Pong-v5", wrappers=stack, **server)
    stack = [{"name": "frame_stack", "kwargs": {"stack_size": 50}}]
    with pytest.raises(InvalidRequestError, match=r"a step of 64 envs would return 307 MiB"):
        netgym.make_vec("ALE/Pong-v5", 64, wrappers=stack, **server)
    netgym.make("ALE/Pong-v5", wrappers=stack, **server).close()  # one of them is fine


def test_an_atari_session_keeps_ale_s_banner_out_of_the_log(envapi: EnvApi) -> None:
    with netgym.make("ALE/Pong-v5", url=envapi.url, token=envapi.token) as env:
        env.reset(seed=0)
    assert "Powered by Stella" not in envapi.log.read_text()


def test_a_token_read_with_its_line_end_still_works(envapi: EnvApi) -> None:
    assert Settings(token=" secret\n").token.get_secret_value() == "secret"  # type: ignore[union-attr]
    for token in (f"{envapi.token}\n", f"{envapi.token} "):  # the REST call and HELLO alike
        with netgym.make("CartPole-v1", url=envapi.url, token=token) as env:
            env.reset(seed=0)


def test_what_cannot_be_sent_is_refused_before_anything_is_opened(envapi: EnvApi) -> None:
    with pytest.raises(InvalidRequestError, match="an HTTP header cannot carry"):
        netgym.make("CartPole-v1", url=envapi.url, token="sec\nret")
    kwargs = {"url": envapi.url, "token": envapi.token}
    with pytest.raises(InvalidRequestError, match=r"env_kwargs cannot be sent: arrays and bytes"):
        netgym.make("CartPole-v1", **kwargs, env_kwargs={"sutton": np.zeros(2)})
    with pytest.raises(InvalidRequestError, match=r"wrappers cannot be sent: .* of type type"):
        netgym.make("CartPole-v1", **kwargs, wrappers=[gym.wrappers.ClipReward])
    with pytest.raises(InvalidRequestError, match=r"env_kwargs cannot be sent: arrays and bytes"):
        netgym.make("CartPole-v1", **kwargs, env_kwargs={"x": np.array([1, "a"], object)})
    with pytest.raises(InvalidRequestError, match=r"wrappers: Input should be a valid list"):
        netgym.make("CartPole-v1", **kwargs, wrappers="atari")  # type: ignore[arg-type]


def test_env_kwargs_that_are_a_tagged_value_but_no_object_are_refused(envapi: EnvApi) -> None:
    """A tag object is a JSON object, as the body's schema wants; decoded, it is not."""
    for tagged in ({"$tuple": []}, {"$float": "nan"}):
        reply = client(envapi).post(
            "/v1/sessions", json={"env_id": "CartPole-v1", "env_kwargs": tagged}
        )
        assert reply.status_code == 422
        assert reply.json()["error"]["message"].startswith("env_kwargs must be an object, not ")
    # Argument names that are no strings (a $dict may give them), and tags with a blob.
    mixed = {"$dict": [["name", "frame_stack"], [1, 2]]}
    for body, said in [
        ({"wrappers": [mixed]}, "wrappers: argument names are strings, not 1"),
        (
            {"wrappers": [{"name": "frame_stack", "kwargs": {"$dict": [[1, 2]]}}]},
            "wrappers: argument names are strings, not 1",
        ),
        ({"env_kwargs": {"x": {"$obj": {"shape": [1], "items": [1]}}}}, "$obj carries an array"),
    ]:
        reply = client(envapi).post("/v1/sessions", json={"env_id": "CartPole-v1", **body})
        assert reply.status_code == 422, reply.text
        assert said in reply.json()["error"]["message"]


def test_env_kwargs_arrive_as_they_were_given(envapi: EnvApi) -> None:
    """JSON has no tuples: ALE's random frame skip, frameskip=(2, 5), arrived as a list,
    which ALE refuses; numpy scalars are numbers."""
    import ale_py

    gym.register_envs(ale_py)
    given = {"frameskip": (2, 5), "repeat_action_probability": np.float32(0.0)}
    local = gym.make("ALE/Pong-v5", **given)
    remote = netgym.make("ALE/Pong-v5", url=envapi.url, token=envapi.token, env_kwargs=given)
    with contextlib.closing(local), remote:
        assert np.array_equal(local.reset(seed=3)[0], remote.reset(seed=3)[0])
        for action in [2, 3] * 15:
            assert np.array_equal(local.step(action)[0], remote.step(action)[0])


def test_unknown_env_suggests_close_ids(envapi: EnvApi) -> None:
    with pytest.raises(UnknownEnvError, match="CartPole-v1"):
        netgym.make("CartPol-v1", url=envapi.url, token=envapi.token)


def test_client_raises_typed_errors(envapi: EnvApi) -> None:
    with pytest.raises(InvalidRequestError, match="unknown wrapper"):
        netgym.make("CartPole-v1", wrappers=["nope"], url=envapi.url, token=envapi.token)
    with pytest.raises(LimitExceededError):
        netgym.make_vec("CartPole-v1", 10**5, url=envapi.url, token=envapi.token)


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["missing", "wrong"])
def test_rest_needs_the_token(envapi: EnvApi, token: str | None) -> None:
    with client(envapi, token=token) as http:
        for reply in (
            http.get("/v1/envs"),
            http.post("/v1/sessions", json={"env_id": "CartPole-v1"}),
        ):
            assert reply.status_code == 401
            assert reply.json()["error"]["code"] == "unauthorized"
    with pytest.raises(AuthenticationError, match="token"):
        netgym.make("CartPole-v1", url=envapi.url, token=token or "")


def test_sessions_are_listed_and_closed(envapi: EnvApi) -> None:
    envs = netgym.make_vec("CartPole-v1", 2, url=envapi.url, token=envapi.token)
    with client(envapi) as http:
        listed = {s["session_id"] for s in http.get("/v1/sessions").json()["sessions"]}
        assert envs.session_id in listed
        envs.close()
        status = http.get(f"/v1/sessions/{envs.session_id}").json()
        assert status["state"] == "ended"
        assert status["end_reason"] == "closed by the client"
        # DELETE, of an ended session too, answers as GET does.
        assert http.delete(f"/v1/sessions/{envs.session_id}").json() == status


def _open_and_delete_meanwhile(
    envapi: EnvApi, body: dict[str, Any], deletable: Callable[[], bool]
) -> httpx.Response:
    """POST a session; DELETE it once it is listed and ``deletable()`` holds."""
    with client(envapi) as http:
        before = envapi.live_session_ids()
        answers: list[httpx.Response] = []
        opening = threading.Thread(
            target=lambda: answers.append(http.post("/v1/sessions", json=body))
        )
        opening.start()
        wait_for(lambda: bool(envapi.live_session_ids() - before) and deletable(), 30)
        [new] = envapi.live_session_ids() - before
        http.delete(f"/v1/sessions/{new}")
        opening.join(60)
    [answer] = answers
    return answer


def _assert_closed_through_rest(answer: httpx.Response) -> None:
    """Closed on purpose, not crashed: session_ended, not worker_crashed."""
    assert answer.status_code == 410, answer.text
    error = answer.json()["error"]
    assert error["code"] == "session_ended" and "closed through the REST API" in error["message"]


def test_a_session_closed_while_its_envs_are_made_answers_that_it_ended(envapi: EnvApi) -> None:
    body = {"env_id": "netgym-test/SlowMake-v0", "num_envs": 1}  # an hour to make
    _assert_closed_through_rest(_open_and_delete_meanwhile(envapi, body, lambda: True))


def test_a_session_closed_as_its_envs_became_ready_is_not_answered_201(
    envapi: EnvApi, tmp_path: Path
) -> None:
    """Its "ready" comes after the DELETE (its make ends at SIGTERM, which it then
    ignores until the kill): a 201 would send the client to a session that is going."""
    marker = tmp_path / "making"
    body = {
        "env_id": "netgym-test/ReadyAtSigterm-v0",
        "num_envs": 1,
        "env_kwargs": {"marker": str(marker)},
    }
    _assert_closed_through_rest(_open_and_delete_meanwhile(envapi, body, marker.exists))


def raw_request(envapi: EnvApi, head: str, body: bytes = b"") -> tuple[int, dict]:
    """Send a request's head (and some body) over a raw socket; read the whole reply.

    The body is sent from a thread, and may stop short: the server answers and
    closes as soon as it has seen enough.
    """
    port = int(envapi.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")

        def send_body() -> None:
            with contextlib.suppress(OSError):
                sock.sendall(body)

        sender = threading.Thread(target=send_body, daemon=True)
        sender.start()
        reply = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


@pytest.mark.parametrize("announced", [2 << 20, 300 << 20], ids=["2-MiB", "300-MiB"])
def test_token_is_checked_before_the_body_is_read(envapi: EnvApi, announced: int) -> None:
    # Announces a body and sends none: the answer comes from the headers alone.
    status, body = raw_request(
        envapi,
        f"POST /v1/sessions HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        f"Content-Length: {announced}\n",
    )
    assert status == 401 and body["error"]["code"] == "unauthorized"


def test_a_body_too_large_is_refused_before_a_client_that_waits_sends_it(
    envapi: EnvApi,
) -> None:
    # curl waits for "100 Continue" before a body over 1 MiB: none is sent.
    status, body = raw_request(
        envapi,
        f"POST /v1/sessions HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        f"Authorization: Bearer {envapi.token}\nExpect: 100-continue\n"
        f"Content-Length: {2 << 20}\n",
    )
    assert status == 413 and body["error"]["code"] == "message_too_large"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_large_body_is_refused(envapi: EnvApi, framing: str) -> None:
    size = 2 << 20
    if framing == "chunked":  # no length announced: counted while read
        length_header = "Transfer-Encoding: chunked"
        piece = b"a" * 65536
        body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(size // len(piece)))
        body += b"0\r\n\r\n"
    else:
        length_header, body = f"Content-Length: {size}", b"a" * size
    status, reply = raw_request(
        envapi,
        f"POST /v1/sessions HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        f"Authorization: Bearer {envapi.token}\n{length_header}\n",
        body,
    )
    assert status == 413 and reply["error"]["code"] == "message_too_large"
    assert "1048576 bytes" in reply["error"]["message"]
    assert client(envapi).get("/v1/health").status_code == 200


def test_the_client_is_told_its_body_is_too_large_while_it_still_sends_it(
    envapi: EnvApi,
) -> None:
    # Answered before the body is all read, it got a reset connection instead.
    with pytest.raises(MessageTooLargeError, match="1048576 bytes"):
        netgym.make(
            "CartPole-v1", env_kwargs={"x": "a" * (16 << 20)}, url=envapi.url, token=envapi.token
        )


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b'{"env_id": "CartPole-v1", "env_kwargs": {"render_mode": 1e999}}', 422, None),
        (b'{"env_id": "CartPole-v1", "env_kwargs": {"render_mode": NaN}}', 422, None),
        (b'{"env_id": "CartPole-\\ud800"}', 404, "unknown_env"),
    ],
    ids=["infinity", "nan", "lone-surrogate"],
)
def test_an_error_that_quotes_what_json_cannot_carry_is_still_answered(
    envapi: EnvApi, content: bytes, status: int, code: str | None
) -> None:
    with client(envapi) as http:
        reply = http.post(
            "/v1/sessions", content=content, headers={"Content-Type": "application/json"}
        )
        assert reply.status_code == status, reply.text
        error = reply.json()["error"]
        assert error["code"] == (code or "invalid_request") and error["message"], error
    assert "Exception in ASGI application" not in envapi.log.read_text()


def test_bad_env_kwargs_are_always_an_invalid_request(envapi: EnvApi) -> None:
    """The session's "failed" message is never lost to its exit: no worker_crashed."""
    with client(envapi) as http:
        for _ in range(10):
            reply = http.post(
                "/v1/sessions", json={"env_id": "CartPole-v1", "env_kwargs": {"no_such": 1}}
            )
            assert reply.status_code == 422, reply.text
            assert reply.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("mode", ["human", "rgb_array"])
def test_a_render_mode_is_refused_with_the_reason(envapi: EnvApi, mode: str) -> None:
    with client(envapi) as http:
        reply = http.post(
            "/v1/sessions", json={"env_id": "CartPole-v1", "env_kwargs": {"render_mode": mode}}
        )
    assert reply.status_code == 422, reply.text
    assert (
        f"render_mode={mode!r}: the envapi's envs run on a server with no screen"
        in (reply.json()["error"]["message"])
    )


def test_a_hung_emulator_service_does_not_stall_the_envapi(tmp_path: Path) -> None:
    """Asking a silent emulator service for its games takes 10 s, in a thread of its own."""
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    with silent, run_envapi(tmp_path, emulator_url=url) as envapi:
        results: list[BaseException | None] = []

        def open_game() -> None:
            try:
                netgym.make("netgym/Catch-v0", url=envapi.url, token=envapi.token)
            except NetgymError as exc:
                results.append(exc)

        waiting = threading.Thread(target=open_game)
        waiting.start()
        time.sleep(0.5)
        started = time.monotonic()
        assert client(envapi).get("/v1/sessions").status_code == 200
        assert time.monotonic() - started < 5.0  # not held up by the call in flight (10 s)
        waiting.join(30)
        assert isinstance(results[0], ServerUnavailableError)
        assert "did not answer GET /v1/games within 10 s" in results[0].message


@pytest.mark.parametrize(
    ("env_id", "suggested"),
    [("CartPol-v1", "CartPole-v1"), ("ALE/Pongg-v5", "ALE/Pong-v5"), ("Pong-v5", "ALE/Pong-v5")],
)
def test_an_unknown_env_id_suggests_ids_of_close_names(env_id: str, suggested: str) -> None:
    # By the name alone: the namespace and version alike made unrelated ids look close.
    from netgym_envapi.catalog import find_env

    with pytest.raises(UnknownEnvError, match=r"did you mean .*") as caught:
        find_env(env_id)
    assert suggested in caught.value.message.split("did you mean ")[1]


def test_action_names_that_do_not_fit_the_action_space_are_not_served() -> None:
    import gymnasium as gym

    from netgym_envapi.catalog import action_meanings

    class Named(gym.Env[np.ndarray, int]):
        observation_space = gym.spaces.Box(0, 1, (1,))

        def __init__(self, space: gym.Space[Any], names: list[str]) -> None:
            self.action_space, self.names = space, names

        def get_action_meanings(self) -> list[str]:
            return self.names

    assert action_meanings(Named(gym.spaces.Discrete(2), ["left", "right"])) == ["left", "right"]
    assert action_meanings(Named(gym.spaces.Discrete(3), ["left", "right"])) is None
    assert action_meanings(Named(gym.spaces.Box(-1, 1, (2,)), ["x", "y"])) is None  # no names
