"""stable-baselines3 trains on remote envs through RemoteVecEnv."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.wrappers import TimeLimit
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecMonitor

from netgym.errors import InvalidRequestError
from netgym.sb3 import ReconnectAwareVecMonitor, RemoteVecEnv


def test_vec_env_api(remote_kwargs: dict) -> None:
    envs = RemoteVecEnv("CartPole-v1", 4, **remote_kwargs)
    try:
        envs.seed(3)
        obs = envs.reset()
        assert obs.shape == (4, 4)
        done_seen = False
        for _ in range(60):
            obs, rewards, dones, infos = envs.step(np.ones(4, dtype=np.int64))
            assert rewards.dtype == np.float32 and dones.dtype == np.bool_
            # On every step, as DummyVecEnv gives it; user code may index it.
            assert [info["TimeLimit.truncated"] for info in infos] == [False] * 4
            for i in np.flatnonzero(dones):
                done_seen = True
                assert infos[i]["terminal_observation"].shape == (4,)
                assert infos[i]["TimeLimit.truncated"] is False
        assert done_seen
        assert [spec.id for spec in envs.get_attr("spec")] == ["CartPole-v1"] * 4
        assert envs.env_is_wrapped(TimeLimit) == [True] * 4  # the server's, at 500 steps
        assert envs.env_is_wrapped(Monitor) == [False] * 4
    finally:
        envs.close()


@pytest.mark.slow
def test_ppo_trains_on_remote_cartpole(remote_kwargs: dict) -> None:
    envs = VecMonitor(RemoteVecEnv("CartPole-v1", 4, **remote_kwargs))
    try:
        model = PPO(
            "MlpPolicy", envs, n_steps=256, batch_size=256, n_epochs=4, seed=0, device="cpu"
        )
        model.learn(total_timesteps=4096)
        assert model.num_timesteps >= 4096
        assert len(model.ep_info_buffer) > 0
    finally:
        envs.close()


def test_a_bernoulli_policy_presses_multibinary_buttons(remote_kwargs: dict) -> None:
    """SB3 acts in float 0.0 and 1.0 on MultiBinary spaces, as its own VecEnvs accept."""
    envs = RemoteVecEnv("netgym-test/Buttons-v0", 2, **remote_kwargs)
    try:
        model = PPO("MlpPolicy", envs, n_steps=16, batch_size=32, n_epochs=1, device="cpu")
        model.learn(total_timesteps=32)
        envs.reset()
        _, rewards, _, _ = envs.step(np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]], np.float32))
        assert rewards.tolist() == [2.0, 0.0]
    finally:
        envs.close()


def test_a_finished_envs_reset_info_goes_to_reset_infos(remote_kwargs: dict) -> None:
    envs = RemoteVecEnv("netgym-test/Buttons-v0", 2, **remote_kwargs)
    try:
        envs.reset()
        assert [info["resets"] for info in envs.reset_infos] == [1, 1]
        for _ in range(3):
            _, _, dones, infos = envs.step(np.ones((2, 3), np.int8))
        assert dones.all()
        for info in infos:  # the last step's info, as DummyVecEnv gives it
            assert info["step"] == 3 and "resets" not in info
            assert info["terminal_observation"].shape == (1,)
        assert [info["resets"] for info in envs.reset_infos] == [2, 2]
    finally:
        envs.close()


def test_different_reset_options_per_env_are_refused(remote_kwargs: dict) -> None:
    envs = RemoteVecEnv("CartPole-v1", 2, **remote_kwargs)
    try:
        with pytest.raises(InvalidRequestError, match="same options"):
            envs.set_options([{"low": -0.1}, {"low": -0.2}])
        assert envs.reset().shape == (2, 4)  # the refused options are not kept
        envs.set_options({"low": -0.1, "high": 0.1})  # one dict for all: fine
        assert envs.reset().shape == (2, 4)
    finally:
        envs.close()
    with pytest.raises(InvalidRequestError, match="takes no autoreset_mode"):
        RemoteVecEnv("CartPole-v1", 2, autoreset_mode="next_step", **remote_kwargs)


def test_evaluate_policy_counts_the_servers_episode_statistics(remote_kwargs: dict) -> None:
    """Clipped rewards sum to -200 an episode of Pendulum; its true returns are far lower."""
    wrappers = ["episode_statistics", "clip_reward"]
    env = RemoteVecEnv("Pendulum-v1", 2, wrappers=wrappers, **remote_kwargs)
    bare = RemoteVecEnv("Pendulum-v1", 1, **remote_kwargs)
    try:
        assert env.env_is_wrapped(Monitor) == [True, True]
        assert bare.env_is_wrapped(Monitor) == [False]
        model = PPO("MlpPolicy", env, seed=0, device="cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "not wrapped with a Monitor" warning
            returns, lengths = evaluate_policy(
                model, env, n_eval_episodes=2, return_episode_rewards=True
            )
        assert lengths == [200, 200]
        assert all(r < -400 for r in returns), returns
    finally:
        env.close()
        bare.close()


def test_the_agents_monitor_records_the_servers_episode_statistics(remote_kwargs: dict) -> None:
    wrappers = ["episode_statistics", "clip_reward"]
    remote = RemoteVecEnv("Pendulum-v1", 2, wrappers=wrappers, **remote_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none that the server's statistics are overwritten
        env = ReconnectAwareVecMonitor(remote)
    try:
        model = PPO("MlpPolicy", env, seed=0, device="cpu")
        returns, lengths = evaluate_policy(
            model, env, n_eval_episodes=2, return_episode_rewards=True
        )
        assert lengths == [200, 200]
        assert all(r < -400 for r in returns), returns  # clipped, they would sum to -200
    finally:
        env.close()
