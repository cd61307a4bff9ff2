"""PPO learns Catch on the CPU through the whole stack, well past a random policy.

Issue 3's test game exists for this: a tiny NES game of our own that an agent
learns in minutes on a CPU. Everything is seeded (the no-op counts, the random
policy, PPO) and FCEUX is deterministic, so the figures repeat from run to run.
Measured on the 2-core development machine (shared, so timings vary): over
these 16 episodes the random policy averages 0.07 and PPO after 30,000 steps
(2-3 minutes at 170-260 steps/s) 2.69, the same figures on every run.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from netgym.sb3 import RemoteVecEnv
from tests.emulator.conftest import Stack

ENV_ID = "netgym/Catch-v0"
NUM_ENVS = 4
EPISODES_PER_ENV = 4  # 16 episodes of at most 250 steps for each policy
TRAIN_STEPS = 30_000
MARGIN = 1.5  # PPO's mean return must beat the random policy's by this much
PPO_HYPERPARAMS = {
    "n_steps": 128,
    "batch_size": 128,
    "n_epochs": 10,
    "learning_rate": 1e-3,
    "gamma": 0.9,
    "gae_lambda": 0.95,
    "ent_coef": 0.01,
    "clip_range": 0.2,
    "policy_kwargs": {"net_arch": [64, 64]},
}

Policy = Callable[[np.ndarray], np.ndarray]


def make_envs(stack: Stack) -> RemoteVecEnv:
    return RemoteVecEnv(ENV_ID, NUM_ENVS, env_kwargs={"observation": "ram"}, **stack.kwargs)


def mean_return(stack: Stack, policy: Policy, seed: int) -> float:
    """Mean return of the first EPISODES_PER_ENV episodes of every env."""
    envs = make_envs(stack)
    try:
        envs.seed(seed)
        obs = envs.reset()
        returns: list[float] = []
        running = np.zeros(NUM_ENVS)
        finished = np.zeros(NUM_ENVS, dtype=int)
        while (finished < EPISODES_PER_ENV).any():
            obs, rewards, dones, _ = envs.step(policy(obs))
            running += rewards
            for i in np.flatnonzero(dones):
                if finished[i] < EPISODES_PER_ENV:
                    returns.append(float(running[i]))
                    finished[i] += 1
                running[i] = 0.0
        return float(np.mean(returns))
    finally:
        envs.close()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ppo_learns_catch_on_the_cpu_and_beats_a_random_policy(stack: Stack) -> None:
    rng = np.random.default_rng(0)
    random_mean = mean_return(stack, lambda obs: rng.integers(0, 5, len(obs)), seed=1000)

    torch.set_num_threads(1)  # the emulators need the other core
    envs = make_envs(stack)
    try:
        envs.seed(0)
        model = PPO("MlpPolicy", envs, seed=0, device="cpu", **PPO_HYPERPARAMS)
        model.learn(total_timesteps=TRAIN_STEPS)
    finally:
        envs.close()

    def trained(obs: np.ndarray) -> np.ndarray:
        return model.predict(obs, deterministic=True)[0]

    ppo_mean = mean_return(stack, trained, seed=2000)
    print(
        f"mean return over {NUM_ENVS * EPISODES_PER_ENV} episodes: random {random_mean:.2f}, "
        f"PPO after {TRAIN_STEPS} steps {ppo_mean:.2f}"
    )
    assert ppo_mean > random_mean + MARGIN, (
        f"PPO's mean return {ppo_mean:.2f} does not beat the random policy's "
        f"{random_mean:.2f} by {MARGIN}"
    )
