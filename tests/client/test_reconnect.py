"""ReconnectingVecEnv survives a killed envapi and lost sessions, and only those.

The envapi here is a real process: it is SIGKILLed with all its children (as a
crash or an OOM kill would) and started again on the same ports, or its session
is ended server-side through REST or by killing the session process.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import gymnasium
import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy

from netgym import errors
from netgym.client.rest import RestClient
from netgym.sb3 import (
    RECONNECTED_KEY,
    ReconnectAwareVecMonitor,
    ReconnectFailedError,
    ReconnectingVecEnv,
    RemoteVecEnv,
    is_retryable,
)
from tests.servers import EnvApi, descendants, kill_tree, restart_envapi, run_envapi

ONES = np.ones(4, dtype=np.int64)


@pytest.fixture(scope="module")
def restartable_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvApi]:
    """A private envapi that these tests kill and restart."""
    with run_envapi(tmp_path_factory.mktemp("reconnect")) as server:
        yield server


@pytest.fixture
def restartable(restartable_server: EnvApi) -> EnvApi:
    """The private envapi, running (a test before may have left it killed)."""
    if restartable_server.process.poll() is not None:
        restart_envapi(restartable_server)
    return restartable_server


def cartpole(server: EnvApi, **kwargs: Any) -> ReconnectingVecEnv:
    return ReconnectingVecEnv(
        "CartPole-v1", 4, url=server.url, token=server.token, reconnect_timeout_s=30, **kwargs
    )


def restart_later(server: EnvApi, delay_s: float) -> Future[None]:
    """Restart the (killed) envapi in a thread after ``delay_s``: the client meets refusals."""

    def restart() -> None:
        time.sleep(delay_s)
        restart_envapi(server)

    pool = ThreadPoolExecutor(1)
    future = pool.submit(restart)
    pool.shutdown(wait=False)  # returns at once; the thread ends with the restart
    return future


def reset_obs(server: EnvApi, seeds: list[int]) -> np.ndarray:
    """What a fresh session's reset with these seeds observes."""
    reference = RemoteVecEnv("CartPole-v1", 4, url=server.url, token=server.token)
    try:
        return reference.remote.reset(seed=seeds)[0]
    finally:
        reference.close()


@pytest.mark.parametrize(
    "error, retryable",
    [
        (errors.ConnectionLostError, True),
        (errors.ServerUnavailableError, True),
        (errors.SessionEndedError, True),
        (errors.WorkerCrashedError, True),
        (errors.WorkerTimeoutError, True),
        (errors.SessionNotFoundError, True),
        (errors.InvalidActionError, False),
        (errors.InvalidRequestError, False),
        (errors.EnvError, False),
        (errors.ProtocolError, False),
        (errors.ProtocolVersionError, False),
        (errors.MessageTooLargeError, False),
        (errors.AuthenticationError, False),
        (errors.UnknownEnvError, False),
        (errors.SessionStateError, False),
        (errors.LimitExceededError, False),
        (errors.UnsupportedSpaceError, False),
        (errors.NetgymError, False),
        (ReconnectFailedError, False),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else str(value),
)
def test_which_errors_reconnect(error: type[errors.NetgymError], retryable: bool) -> None:
    assert is_retryable(error("boom")) is retryable


def test_step_reconnects_across_an_envapi_kill_and_restart(
    restartable: EnvApi, caplog: pytest.LogCaptureFixture
) -> None:
    envs = cartpole(restartable)
    try:
        envs.seed(7)
        envs.reset()
        for _ in range(3):
            last_obs = envs.step(np.zeros(4, dtype=np.int64))[0].copy()
        lost_session = envs.remote.session_id
        kill_tree(restartable.process)
        restarted = restart_later(restartable, 1.0)
        with caplog.at_level(logging.INFO, logger="netgym"):
            obs, rewards, dones, infos = envs.step(ONES)
        restarted.result()

        assert envs.reconnects == 1 and envs.lost_episodes == 4
        assert dones.dtype == np.bool_ and dones.all()
        assert rewards.dtype == np.float32 and not rewards.any()
        for i, info in enumerate(infos):
            assert info[RECONNECTED_KEY] is True
            assert info["TimeLimit.truncated"] is True  # bootstrapped, not a true end
            np.testing.assert_array_equal(info["terminal_observation"], last_obs[i])
            assert "episode" not in info
        assert envs.remote.session_id != lost_session
        assert "lost session " + lost_session in caplog.text
        assert "retrying in" in caplog.text  # it met the envapi down and backed off
        assert "reconnected to " + restartable.url in caplog.text

        # Reproducible: the new envs are seeded from the seed and the reconnect count.
        seeds = [int(s) for s in np.random.SeedSequence([7, 1]).generate_state(4)]
        np.testing.assert_array_equal(obs, reset_obs(restartable, seeds))
        for _ in range(30):
            _, _, _, infos = envs.step(ONES)
            assert not any(RECONNECTED_KEY in info for info in infos)
        assert envs.reconnects == 1
    finally:
        envs.close()


def test_reset_reconnects_with_the_seeds_it_was_given(restartable: EnvApi) -> None:
    envs = cartpole(restartable)
    try:
        kill_tree(restartable.process)
        restart_envapi(restartable)
        envs.seed(3)
        obs = envs.reset()
        assert envs.reconnects == 1 and envs.lost_episodes == 0
        np.testing.assert_array_equal(obs, reset_obs(restartable, [3, 4, 5, 6]))
        envs.step(ONES)
    finally:
        envs.close()


def test_gives_up_after_reconnect_timeout(restartable: EnvApi) -> None:
    envs = cartpole(restartable)
    envs.reconnect_timeout_s = 1.5
    try:
        envs.reset()
        kill_tree(restartable.process)
        started = time.monotonic()
        with pytest.raises(ReconnectFailedError) as caught:
            envs.step(ONES)
        assert 1.5 <= time.monotonic() - started < 10
        message = str(caught.value)
        assert "reconnect_timeout_s=1.5" in message and restartable.url in message
        assert "is the envapi running?" in message
    finally:
        envs.close()


def test_a_stopped_envapi_fails_within_the_timeouts(restartable: EnvApi) -> None:
    """A hung envapi (SIGSTOP) holds the client no longer than its own timeouts."""
    envs = cartpole(restartable, timeout_s=1.0)
    envs.reconnect_timeout_s = 1.5
    stopped = [restartable.process.pid, *descendants(restartable.process.pid)]
    try:
        envs.reset()
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(ReconnectFailedError) as caught:
            envs.step(ONES)
        # 1 s for the step's reply, up to 3 s asking why, 1.5 s of reconnecting
        assert time.monotonic() - started < 10
        message = str(caught.value)
        assert "did not answer POST /v1/sessions within" in message, message
        assert "hung, stopped or overloaded" in message
    finally:
        envs.close()
        kill_tree(restartable.process)  # SIGKILL ends stopped processes too


def test_session_deleted_server_side(envapi: EnvApi) -> None:
    envs = ReconnectAwareVecMonitor(cartpole(envapi))
    inner = envs.venv
    assert isinstance(inner, ReconnectingVecEnv)
    try:
        envs.seed(0)
        envs.reset()
        for _ in range(40):  # always pushing right ends CartPole episodes quickly
            envs.step(ONES)
        finished = envs.episode_count
        assert finished > 0
        lost_session = inner.remote.session_id
        RestClient(envapi.url, envapi.token).call("DELETE", f"/v1/sessions/{lost_session}")
        _, _, dones, infos = envs.step(ONES)
        assert dones.all() and all(info[RECONNECTED_KEY] for info in infos)
        assert inner.reconnects == 1 and inner.remote.session_id != lost_session
        # The monitor logs no fake episodes for them, and counts on afterwards.
        assert not any("episode" in info for info in infos)
        assert envs.episode_count == finished and envs.lost_episodes == 4
        for _ in range(40):
            envs.step(ONES)
        assert envs.episode_count > finished
    finally:
        envs.close()


def test_session_process_killed(envapi: EnvApi) -> None:
    envs = cartpole(envapi)
    try:
        envs.reset()
        envs.step(ONES)
        session = RestClient(envapi.url, envapi.token).call(
            "GET", f"/v1/sessions/{envs.remote.session_id}"
        )
        os.kill(session["pid"], signal.SIGKILL)
        _, _, dones, infos = envs.step(ONES)
        assert dones.all() and infos[0][RECONNECTED_KEY]
        assert envs.reconnects == 1
    finally:
        envs.close()


def test_a_reconnect_bounds_every_wait_by_its_deadline_then_steps_with_timeout_s(
    envapi: EnvApi,
) -> None:
    envs = cartpole(envapi, timeout_s=40.0)
    try:
        within = envs._open_remote(4, within_s=3.0)  # as one reconnect attempt opens
        assert within._connection.timeout_s == 3.0  # HELLO and reset wait no longer
        within.close()
        envs.reset()
        rest = RestClient(envapi.url, envapi.token)
        rest.call("DELETE", f"/v1/sessions/{envs.remote.session_id}")
        envs.step(ONES)
        assert envs.reconnects == 1
        assert envs.remote._connection.timeout_s == 40.0
    finally:
        envs.close()


def test_a_step_interrupted_by_ctrl_c_reconnects_at_the_next_step(
    envapi: EnvApi, ctrl_c_at_next_reply: Callable[[], None]
) -> None:
    """Ctrl-C in ``learn()``, then ``learn()`` again, as in a notebook."""
    envs = cartpole(envapi)
    try:
        envs.reset()
        ctrl_c_at_next_reply()
        with pytest.raises(KeyboardInterrupt):
            envs.step(ONES)
        _, _, dones, infos = envs.step(ONES)
        assert dones.all() and infos[0][RECONNECTED_KEY] and envs.reconnects == 1
        envs.step(ONES)
    finally:
        envs.close()


def test_failure_while_sending_reconnects_in_step_wait(
    envapi: EnvApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    envs = cartpole(envapi)
    try:
        envs.reset()

        def broken(actions: Any) -> None:
            raise errors.ConnectionLostError("the data connection broke: [Errno 32] Broken pipe")

        monkeypatch.setattr(envs.remote, "step_async", broken)
        envs.step_async(ONES)  # SB3 expects results from step_wait, not an error here
        _, _, dones, infos = envs.step_wait()
        assert dones.all() and infos[0][RECONNECTED_KEY] and envs.reconnects == 1
    finally:
        envs.close()


def test_bad_actions_and_env_errors_are_raised_not_retried(envapi: EnvApi) -> None:
    envs = cartpole(envapi)
    try:
        envs.reset()
        with pytest.raises(errors.InvalidActionError):
            envs.step(np.array([0, 1, 7, 0]))
        envs.step(ONES)  # the same session goes on
        assert envs.reconnects == 0
    finally:
        envs.close()
    raising = ReconnectingVecEnv(
        "netgym-test/Raise-v0", 2, url=envapi.url, token=envapi.token, reconnect_timeout_s=30
    )
    try:
        raising.reset()
        with pytest.raises(errors.EnvError, match="on purpose"):
            raising.step(np.array([0, 1]))
        assert raising.reconnects == 0
    finally:
        raising.close()


def test_max_reconnects(envapi: EnvApi) -> None:
    envs = cartpole(envapi, max_reconnects=0)
    try:
        envs.reset()
        session_id = envs.remote.session_id
        RestClient(envapi.url, envapi.token).call("DELETE", f"/v1/sessions/{session_id}")
        with pytest.raises(ReconnectFailedError, match="max_reconnects"):
            envs.step(ONES)
    finally:
        envs.close()


def test_invalid_arguments() -> None:
    with pytest.raises(errors.InvalidRequestError, match="reconnect_timeout_s"):
        ReconnectingVecEnv("CartPole-v1", 1, reconnect_timeout_s=0)
    with pytest.raises(errors.InvalidRequestError, match="max_reconnects"):
        ReconnectingVecEnv("CartPole-v1", 1, max_reconnects=-1)


class _KillAndRestartOnce(BaseCallback):
    """Kills the envapi mid-``learn``, restarts it from a thread half a second later.

    Also keeps every finished episode's return (SB3's own buffer keeps the last 100).
    """

    def __init__(self, server: EnvApi, at_step: int) -> None:
        super().__init__()
        self.server = server
        self.at_step = at_step
        self.restarted: Future[None] | None = None
        self.returns: list[float] = []
        self.episodes_before_restart = 0

    def _on_step(self) -> bool:
        self.returns += [float(i["episode"]["r"]) for i in self.locals["infos"] if "episode" in i]
        if self.restarted is None and self.num_timesteps >= self.at_step:
            self.episodes_before_restart = len(self.returns)
            kill_tree(self.server.process)
            self.restarted = restart_later(self.server, 0.5)
        return True


@pytest.mark.slow
def test_ppo_keeps_learning_across_an_envapi_restart(restartable: EnvApi) -> None:
    envs = ReconnectAwareVecMonitor(cartpole(restartable))
    restart = _KillAndRestartOnce(restartable, at_step=3000)
    try:
        model = PPO(
            "MlpPolicy", envs, n_steps=256, batch_size=256, n_epochs=4, seed=0, device="cpu"
        )
        model.learn(total_timesteps=12_288, callback=restart)
        assert restart.restarted is not None
        restart.restarted.result()
        assert model.num_timesteps >= 12_288
        assert envs.unwrapped.reconnects == 1 and envs.lost_episodes == 4
        returns = restart.returns
        assert len(returns) - restart.episodes_before_restart >= 10, returns
        # Learning went on: the trained policy, played greedily, does far better
        # than the first (random) episodes. (Judged by greedy play rather than by
        # the last training episodes, whose spread made that comparison flaky.)
        evaluation = gymnasium.make("CartPole-v1")
        evaluation.reset(seed=0)
        mean_return, _ = evaluate_policy(model, evaluation, n_eval_episodes=10)
        assert mean_return > 2 * np.mean(returns[:10]), (mean_return, returns)
    finally:
        envs.close()
