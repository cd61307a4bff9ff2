"""stable-baselines3 trains on remote envs through RemoteVecEnv."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor

from netgym.sb3 import RemoteVecEnv


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
            for i in np.flatnonzero(dones):
                done_seen = True
                assert infos[i]["terminal_observation"].shape == (4,)
                assert infos[i]["TimeLimit.truncated"] is False
        assert done_seen
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
