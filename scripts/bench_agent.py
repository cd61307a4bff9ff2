"""Benchmark: PPO training speed on remote envs against in-process envs, in one run.

Trains stable-baselines3 PPO (CnnPolicy, the rl-zoo Atari hyperparameters) on
ALE/Pong-v5 with 8 envs, and measures env steps per second of ``learn``
(collecting rollouts and learning from them) for, interleaved round by round:

- netgym: ``RemoteVecEnv`` over an envapi on this machine (loopback), with the
  preprocessing done server-side (wrappers ``atari``, ``clip_reward``,
  ``frame_stack``);
- SB3's own path: ``make_atari_env`` + ``VecFrameStack(4)``, with
  ``DummyVecEnv`` (the envs step one after another in the trainer's process)
  and with ``SubprocVecEnv`` (one process per env);
- the server's own wrappers (Gymnasium's ``AtariPreprocessing``,
  ``TransformReward`` sign, ``FrameStackObservation``) in a ``DummyVecEnv``:
  the same code the envapi runs, in process.

Equal work on every side: every env is ``ALE/Pong-v5`` made with the same
``ENV_KWARGS`` (``frameskip=1``, as both preprocessors skip 4 frames
themselves, and sticky actions at v5's 0.25 named explicitly); no-op starts up
to 30, frame skip 4 with max-pooling, 84x84 gray, rewards clipped, 4 frames
stacked. Differences that remain: SB3's ``WarpFrame`` converts RGB frames to
gray with OpenCV (after max-pooling RGB), Gymnasium's ``AtariPreprocessing``
reads gray from ALE directly; SB3's ``FireResetEnv`` presses FIRE after each
reset; SB3 stacks as (84, 84, 4) and transposes to (4, 84, 84) for the CNN,
the server stacks as (4, 84, 84). Each backend has its own PPO model with the
same seed. Prints the median over ``--rounds`` of each and the ratios.

Torch runs on its default number of threads (one per core), or on
``--torch-threads``, the same for every backend, with the OpenMP setting that
``netgym-train`` uses (``netgym_agent.threads``: idle OpenMP threads spin a
tenth of libgomp's default); set ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` in
the environment to compare others (300000 is libgomp's default).

    python scripts/bench_agent.py        # 3 rounds, about 4 minutes on 2 cores
    python scripts/bench_agent.py --torch-threads 1 --rounds 5
    python scripts/bench_agent.py --device cuda    # on a machine with an NVIDIA GPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netgym_agent.threads import limit_openmp_spinning

limit_openmp_spinning()  # as netgym-train does, before torch loads libgomp

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.env_util import make_atari_env, make_vec_env  # noqa: E402
from stable_baselines3.common.logger import Logger  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecFrameStack  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from netgym.sb3 import RemoteVecEnv  # noqa: E402
from scripts.bench_envapi import start_envapi  # noqa: E402

ENV_ID = "ALE/Pong-v5"
ENV_KWARGS: dict[str, Any] = {"frameskip": 1, "repeat_action_probability": 0.25}
PPO_KWARGS: dict[str, Any] = {  # rl-baselines3-zoo's Atari PPO, schedules made constant
    "n_steps": 128,
    "batch_size": 256,
    "n_epochs": 4,
    "learning_rate": 2.5e-4,
    "clip_range": 0.1,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
}
REMOTE = "netgym RemoteVecEnv"
TARGET = 0.95  # remote steps/s over in-process steps/s, the bar


class RolloutTimer(BaseCallback):
    """Adds up the seconds spent collecting rollouts (the rest of ``learn`` is learning)."""

    def __init__(self) -> None:
        super().__init__()
        self.collect_s = 0.0
        self._started = 0.0

    def _on_rollout_start(self) -> None:
        self._started = time.perf_counter()

    def _on_rollout_end(self) -> None:
        self.collect_s += time.perf_counter() - self._started

    def _on_step(self) -> bool:
        return True


def make_pong(**kwargs: Any) -> gym.Env[Any, Any]:
    """``gym.make(ENV_ID)``, registering ALE's envs first: SubprocVecEnv's workers need it."""
    import ale_py

    gym.register_envs(ale_py)
    return gym.make(ENV_ID, **kwargs)


def server_wrappers(env: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
    """What the envapi's ``atari``, ``clip_reward`` and ``frame_stack`` wrappers do."""
    env = gym.wrappers.AtariPreprocessing(
        env, noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=False
    )
    env = gym.wrappers.TransformReward(env, lambda r: float(np.sign(float(r))))
    return gym.wrappers.FrameStackObservation(env, stack_size=4)


def backends(url: str, num_envs: int) -> dict[str, Callable[[], VecEnv]]:
    """Each backend's VecEnv factory, by the name the results print."""
    sb3_wrapper_kwargs = {"terminal_on_life_loss": False}  # as the server's atari wrapper

    def sb3(vec_env_cls: type[DummyVecEnv] | type[SubprocVecEnv]) -> VecEnv:
        envs = make_atari_env(
            make_pong,
            n_envs=num_envs,
            seed=0,
            wrapper_kwargs=sb3_wrapper_kwargs,
            env_kwargs=ENV_KWARGS,
            vec_env_cls=vec_env_cls,
        )
        return VecFrameStack(envs, n_stack=4)

    return {
        REMOTE: lambda: RemoteVecEnv(
            ENV_ID,
            num_envs,
            url=url,
            env_kwargs=ENV_KWARGS,
            wrappers=["atari", "clip_reward", {"name": "frame_stack", "kwargs": {"stack_size": 4}}],
        ),
        "SB3 make_atari_env, DummyVecEnv": lambda: sb3(DummyVecEnv),
        "SB3 make_atari_env, SubprocVecEnv": lambda: sb3(SubprocVecEnv),
        "server's wrappers, DummyVecEnv": lambda: make_vec_env(
            make_pong, num_envs, seed=0, env_kwargs=ENV_KWARGS, wrapper_class=server_wrappers
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--rollouts", type=int, default=3, help="rollouts of n_steps x num_envs per measurement"
    )
    parser.add_argument("--warmup-rollouts", type=int, default=1)
    parser.add_argument("--torch-threads", type=int, help="default: torch's own (one per core)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu (the issue's), cuda")
    parser.add_argument("--output", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    rollout = PPO_KWARGS["n_steps"] * args.num_envs
    steps = args.rollouts * rollout
    envapi, url = start_envapi()
    results: dict[str, list[float]] = {}
    collect_share: dict[str, list[float]] = {}
    models: dict[str, PPO] = {}
    try:
        for name, make in backends(url, args.num_envs).items():
            models[name] = PPO("CnnPolicy", make(), seed=0, device=args.device, **PPO_KWARGS)
            # Logs nowhere: SB3's default logger leaves a /tmp/SB3-<date> folder a run.
            models[name].set_logger(Logger(None, []))
            models[name].learn(args.warmup_rollouts * rollout)
            results[name], collect_share[name] = [], []
        names = list(models)
        for i in range(args.rounds):
            for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate the order
                timer = RolloutTimer()
                started = time.perf_counter()
                models[name].learn(steps, callback=timer, reset_num_timesteps=False)
                elapsed = time.perf_counter() - started
                results[name].append(steps / elapsed)
                collect_share[name].append(timer.collect_s / elapsed)
            print(
                f"round {i + 1}/{args.rounds}: "
                + ", ".join(f"{name} {values[-1]:,.0f}" for name, values in results.items()),
                flush=True,
            )
    finally:
        for model in models.values():
            model.get_env().close()  # type: ignore[union-attr]
        envapi.terminate()
        envapi.wait(15)

    medians = {name: statistics.median(values) for name, values in results.items()}
    print(
        f"\nPPO CnnPolicy, {ENV_ID}, {args.num_envs} envs, {steps} steps per measurement, "
        f"median of {args.rounds} rounds, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads, "
        f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', 'default')}, "
        f"device {args.device}, envapi over loopback"
    )
    print(f"{'backend':<36}{'steps/s':>10}{'collecting':>12}")
    for name, value in medians.items():
        share = statistics.median(collect_share[name])
        print(f"{name:<36}{value:>10,.1f}{share:>11.0%}")
    ratios = {name: medians[REMOTE] / value for name, value in medians.items() if name != REMOTE}
    print(f"\n{'ratio':<58}{'got':>6}{'target':>8}{'':16}per round")
    for name, value in ratios.items():
        mark = "ok" if value >= TARGET else "BELOW TARGET"
        paired = ", ".join(
            f"{r / b:.2f}" for r, b in zip(results[REMOTE], results[name], strict=True)
        )
        print(f"{REMOTE + ' / ' + name:<58}{value:>5.2f}x{TARGET:>7.2f}x  {mark:<14}{paired}")
    if args.output:
        args.output.write_text(
            json.dumps(
                {"medians": medians, "ratios": ratios, "rounds": results, "collect": collect_share},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
