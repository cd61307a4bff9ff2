"""Results through shared memory for a client on the envapi's host, and its file's lifetime."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import netgym
from netgym.errors import InvalidRequestError
from netgym.protocol import MessageType, ResultLayout, pack_value, unpack_space, unpack_value
from netgym.protocol.frames import expect, recv_frame, send_frame, unpack_error
from netgym.protocol.sharedmemory import HEADER_BYTES, open_results_file
from tests.envapi.test_faults import hello, open_session
from tests.servers import EnvApi, kill_tree, restart_envapi, run_envapi, wait_for


@pytest.fixture
def shm_envapi(tmp_path: Path) -> Iterator[tuple[EnvApi, Path]]:
    folder = tmp_path / "shm"
    with run_envapi(tmp_path, shared_memory_dir=str(folder)) as server:
        yield server, folder


def welcome_of(envapi: EnvApi, sock: socket.socket, env_id: str = "CartPole-v1") -> dict[str, Any]:
    message_type, body = hello(sock, open_session(envapi, env_id), envapi.token)
    assert message_type == MessageType.WELCOME, body
    return dict(unpack_value(body))


def test_shared_results_equal_those_through_the_socket(
    shm_envapi: tuple[EnvApi, Path],
) -> None:
    envapi, folder = shm_envapi
    with socket.create_connection(("127.0.0.1", envapi.data_port), timeout=10) as sock:
        welcome = welcome_of(envapi, sock, "ALE/Pong-v5")
        offer = welcome["shared_memory"]
        assert Path(offer["path"]).parent == folder and Path(offer["path"]).exists()
        assert os.stat(offer["path"]).st_mode & 0o777 == 0o600
        memory = open_results_file(offer["path"], offer["token"], offer["nbytes"])
        assert memory is not None
        send_frame(sock, MessageType.SHARE, [pack_value({"token": offer["token"]})])
        expect(*recv_frame(sock, 1 << 24), MessageType.SHARED)
        # Mapped by both ends now: the name is gone, so a crash cannot leave it behind.
        assert not Path(offer["path"]).exists()

        layout = ResultLayout(unpack_space(welcome["observation_space"]), 2)
        shared = np.frombuffer(memory, np.uint8, layout.step_nbytes, HEADER_BYTES)
        send_frame(sock, MessageType.RESET, [pack_value({"seed": 3})])
        body = expect(*recv_frame(sock, 1 << 24), MessageType.RESET_RESULT)
        assert "lives" in unpack_value(body)  # the info alone
        reset_obs = layout.observations.views(shared[: layout.reset_nbytes])[0].copy()
        send_frame(sock, MessageType.STEP, [np.array([1, 2], np.int64).tobytes()])
        body = expect(*recv_frame(sock, 1 << 24), MessageType.STEP_RESULT)
        step = layout.step_views(shared.copy())

    with netgym.make_vec(
        "ALE/Pong-v5", 2, url=envapi.url, token=envapi.token, shared_memory=False
    ) as envs:
        obs, _ = envs.reset(seed=3)
        np.testing.assert_array_equal(obs, reset_obs)
        obs, rewards, terminations, truncations, _ = envs.step(np.array([1, 2]))
        np.testing.assert_array_equal(obs, step.observations[0])
        np.testing.assert_array_equal(rewards, step.rewards)
        np.testing.assert_array_equal(terminations, step.terminations)
        np.testing.assert_array_equal(truncations, step.truncations)


@pytest.mark.parametrize("token", ["0" * 32, "\ud800"], ids=["wrong", "lone-surrogate"])
def test_a_wrong_share_is_refused_and_results_keep_coming_through_the_socket(
    shm_envapi: tuple[EnvApi, Path], token: str
) -> None:
    envapi, _ = shm_envapi
    with socket.create_connection(("127.0.0.1", envapi.data_port), timeout=10) as sock:
        welcome_of(envapi, sock)
        send_frame(sock, MessageType.SHARE, [pack_value({"token": token})])
        message_type, body = recv_frame(sock, 1 << 24)
        assert message_type == MessageType.ERROR
        error = unpack_error(body)
        assert isinstance(error, InvalidRequestError) and "token" in error.message
        send_frame(sock, MessageType.RESET, [pack_value({"seed": 0})])
        body = expect(*recv_frame(sock, 1 << 24), MessageType.RESET_RESULT)
        assert len(body) > 2 * 4 * 4  # the observations came with it


def test_the_python_client_reads_results_from_shared_memory(
    shm_envapi: tuple[EnvApi, Path],
) -> None:
    envapi, folder = shm_envapi
    with netgym.make_vec("CartPole-v1", 2, url=envapi.url, token=envapi.token) as envs:
        assert envs._connection.shared_results is not None
        obs, _ = envs.reset(seed=0)
        for _ in range(30):
            previous = obs
            obs, *_ = envs.step(envs.action_space.sample())
            assert not np.shares_memory(obs, previous)  # each step's arrays are its own
        assert list(folder.iterdir()) == []


def test_no_file_is_left_by_a_session_that_nobody_shares_or_that_is_killed(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "shm"
    with run_envapi(tmp_path, shared_memory_dir=str(folder), attach_timeout_s="5") as envapi:
        open_session(envapi)  # never attached: it ends after attach_timeout_s
        assert len(list(folder.iterdir())) == 1
        wait_for(lambda: list(folder.iterdir()) == [], timeout_s=30)
        with socket.create_connection(("127.0.0.1", envapi.data_port), timeout=10) as sock:
            path = Path(welcome_of(envapi, sock)["shared_memory"]["path"])
            assert path.exists()
            headers = {"Authorization": f"Bearer {envapi.token}"}
            status = httpx.get(
                f"{envapi.url}/v1/sessions/{path.name}", headers=headers, timeout=60
            ).json()
            os.kill(int(status["pid"]), signal.SIGKILL)
            wait_for(lambda: not path.exists(), timeout_s=30)


def test_a_file_of_another_host_is_not_taken(tmp_path: Path) -> None:
    with (
        run_envapi(tmp_path, shared_memory_dir=str(tmp_path / "shm")) as envapi,
        socket.create_connection(("127.0.0.1", envapi.data_port), timeout=10) as sock,
    ):
        offer = welcome_of(envapi, sock)["shared_memory"]
        # Same name, other contents: what a client in another container would find.
        assert open_results_file(offer["path"], "f" * 32, offer["nbytes"]) is None
        assert open_results_file(offer["path"] + "-missing", offer["token"], 8) is None
        assert open_results_file(offer["path"], offer["token"], 1 << 30) is None


def test_shared_memory_can_be_turned_off(tmp_path: Path) -> None:
    with run_envapi(tmp_path, shared_memory="false") as envapi:
        with socket.create_connection(("127.0.0.1", envapi.data_port), timeout=10) as sock:
            assert welcome_of(envapi, sock)["shared_memory"] is None
            send_frame(sock, MessageType.SHARE, [pack_value({"token": "0" * 32})])
            message_type, body = recv_frame(sock, 1 << 24)
            assert message_type == MessageType.ERROR
            error = unpack_error(body)
            assert isinstance(error, InvalidRequestError) and "offered no" in error.message
            send_frame(sock, MessageType.RESET, [pack_value({"seed": 0})])
            expect(*recv_frame(sock, 1 << 24), MessageType.RESET_RESULT)  # it goes on
        with netgym.make_vec("CartPole-v1", 2, url=envapi.url, token=envapi.token) as envs:
            assert envs._connection.shared_results is None
            envs.reset(seed=0)
            envs.step(envs.action_space.sample())


@pytest.mark.parametrize(
    "next_settings",
    [{}, {"NETGYM_SHARED_MEMORY": "false"}, {"NETGYM_SHARED_MEMORY_DIR": "named"}],
    ids=["same-settings", "no-shared-memory", "a-folder-named"],
)
def test_a_killed_envapis_folder_is_removed_by_the_next_one(
    tmp_path: Path, next_settings: dict[str, str]
) -> None:
    with run_envapi(tmp_path) as envapi:  # its own folder in /dev/shm
        with socket.create_connection(("127.0.0.1", envapi.data_port), timeout=10) as sock:
            folder = Path(welcome_of(envapi, sock)["shared_memory"]["path"]).parent
            kill_tree(envapi.process)
        assert folder.is_dir()
        named = {key: str(tmp_path / value) for key, value in next_settings.items()}
        envapi.environ.update(named if "NETGYM_SHARED_MEMORY_DIR" in named else next_settings)
        restart_envapi(envapi)
        assert not folder.exists()
