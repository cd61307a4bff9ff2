"""Evaluate a model on a session of its own, with the same seeds every time.

Each evaluation opens a fresh session and closes it afterwards: the training
session is never disturbed, no idle session holds server workers between
evaluations, and a fixed seed makes evaluations at different steps play the
same starting states, so their returns compare.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize

from netgym.errors import ReconnectFailedError
from netgym_agent.algorithms import ALGORITHMS, MODEL_FILE, VECNORMALIZE_FILE
from netgym_agent.checkpoints import Checkpoint, CheckpointStore, read_directory
from netgym_agent.config import TrainConfig
from netgym_agent.device import announce, resolve_device
from netgym_agent.envs import (
    check_env_fits,
    check_same_game,
    make_env,
    normalize_env,
    reconnect_count,
)
from netgym_agent.errors import CheckpointError
from netgym_agent.rundir import RunDir

EVAL_SEED_OFFSET = 1_000_000


class EvaluationInterrupted(Exception):
    """A stop was requested (SIGINT, SIGTERM) while an evaluation was running."""


@dataclass(frozen=True)
class EvalResult:
    """Returns and lengths of the episodes of one evaluation."""

    step: int
    returns: list[float]
    lengths: list[int]
    wall_s: float
    deterministic: bool
    reconnects: int = 0  # the envs' session was lost and opened again: later seeds differ

    @property
    def reconnect_note(self) -> str:
        """What to know when the envs' session was lost meanwhile (else "")."""
        if not self.reconnects:
            return ""
        times = "once" if self.reconnects == 1 else f"{self.reconnects} times"
        return f"; its envs reconnected {times}, so its later episodes had other seeds"

    @property
    def mean_return(self) -> float:
        """Mean undiscounted return over the episodes."""
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        """Standard deviation of the returns."""
        return float(np.std(self.returns))

    def to_record(self) -> dict[str, Any]:
        """The line ``evaluations.jsonl`` gets."""
        return {
            "step": self.step,
            "mean_return": self.mean_return,
            "std_return": self.std_return,
            "min_return": float(np.min(self.returns)),
            "max_return": float(np.max(self.returns)),
            "mean_length": float(np.mean(self.lengths)),
            "episodes": len(self.returns),
            **asdict(self),
            "time": time.time(),
        }


def evaluate(
    model: BaseAlgorithm,
    config: TrainConfig,
    *,
    url: str | None,
    token: str | None,
    episodes: int,
    num_envs: int,
    deterministic: bool = True,
    statistics: VecNormalize | Path | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    num_envs_key: str = "eval.num_envs",
    revision: str | None = None,
) -> EvalResult:
    """Play ``episodes`` episodes with ``model`` on a new session, then close it.

    Args:
        model: the policy to evaluate.
        config: the env to play, and the seed (evaluation seeds are offset from it).
        url: the envapi (None: ``$NETGYM_URL``).
        token: its token (None: ``$NETGYM_TOKEN``).
        episodes: how many episodes, spread evenly over the envs.
        num_envs: envs in the evaluation session (at most ``episodes`` are used).
        deterministic: take the policy's most likely action.
        statistics: observation normalisation to use, from the training env or a
            saved file, when the config normalises.
        should_stop: polled every step; True aborts with ``EvaluationInterrupted``.
        num_envs_key: where ``num_envs`` comes from, for the error when it is too many.
        revision: the game's revision the model trains on (an NES game's), which the
            evaluation's envs must play too.
    """
    started = time.monotonic()
    env = make_env(
        config,
        num_envs=min(num_envs, episodes),
        url=url,
        token=token,
        stopping=should_stop,
        num_envs_key=num_envs_key,
    )
    try:
        check_env_fits(env, config, model.observation_space, model.action_space)
        check_same_game(env, config, revision, "the model played it")
        saved = statistics if isinstance(statistics, Path) else None
        env = normalize_env(env, config, statistics=saved, training=False)
        if isinstance(statistics, VecNormalize) and isinstance(env, VecNormalize):
            env.obs_rms = statistics.obs_rms.copy()
        env.seed(config.seed + EVAL_SEED_OFFSET)

        def poll(_locals: dict[str, Any], _globals: dict[str, Any]) -> None:
            if should_stop():
                raise EvaluationInterrupted

        try:
            with _seeded_sampling(model, config.seed + EVAL_SEED_OFFSET):
                returns, lengths = evaluate_policy(
                    model,
                    env,
                    n_eval_episodes=episodes,
                    deterministic=deterministic,
                    return_episode_rewards=True,
                    callback=poll,
                )
        except ReconnectFailedError as exc:
            if exc.details.get("stopped"):  # the stop cut a reconnect short
                raise EvaluationInterrupted from exc
            raise
        reconnects = reconnect_count(env)
    finally:
        env.close()
    return EvalResult(
        step=model.num_timesteps,
        returns=[float(r) for r in returns],  # type: ignore[union-attr]
        lengths=[int(n) for n in lengths],  # type: ignore[union-attr]
        wall_s=time.monotonic() - started,
        deterministic=deterministic,
        reconnects=reconnects,
    )


def evaluate_saved(
    run_dir: Path,
    which: str,
    *,
    url: str | None,
    token: str | None,
    episodes: int | None = None,
    num_envs: int | None = None,
    deterministic: bool | None = None,
    device: str | None = None,
    out: TextIO | None = None,
) -> EvalResult:
    """Evaluate a model saved in a run folder, with the run's own config (and with
    ``out``, say there on which device: returns are the same on the same device).

    Args:
        run_dir: the run folder.
        which: ``best``, ``final``, ``latest`` (the newest checkpoint) or a checkpoint folder.
        url: the envapi (None: ``$NETGYM_URL``).
        token: its token (None: ``$NETGYM_TOKEN``).
        episodes: how many episodes (None: the run's ``eval.episodes``).
        num_envs: envs in the evaluation session (None: the run's ``eval.num_envs``).
        deterministic: take the policy's most likely action (None: as the run's
            ``eval.deterministic`` says, as its evaluations did).
        device: instead of the run's (a GPU run evaluated on a CPU machine, say).

    Raises:
        CheckpointError: there is no such model, or it is damaged.
    """
    run = RunDir(run_dir)
    config = run.load_config([] if device is None else [f"device={device}", "require_gpu=false"])
    saved = _saved_model(run, which, config.checkpoint.keep)
    _check_of_this_run(run, config, saved)
    directory = saved.path
    cls = ALGORITHMS[config.algo.name]
    chosen = resolve_device(config, chosen=device is not None)
    if out is not None:
        announce(chosen, out, doing="evaluating")
    try:
        model = cls.load(directory / MODEL_FILE, device=chosen, print_system_info=False)
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        raise CheckpointError(
            f"{directory / MODEL_FILE} does not load as a {cls.__name__} model "
            f"({type(exc).__name__}: {exc}): is it a model of another run? evaluate a "
            "model with the run folder that trained it"
        ) from None
    statistics = directory / VECNORMALIZE_FILE
    return evaluate(
        model,
        config,
        url=url,
        token=token,
        episodes=episodes or config.eval.episodes,
        num_envs=num_envs or config.eval.num_envs,
        deterministic=config.eval.deterministic if deterministic is None else deterministic,
        statistics=statistics if statistics.exists() else None,
        num_envs_key="eval.num_envs" if num_envs is None else "--num-envs",
        revision=saved.info.get("env_revision"),
    )


@contextmanager
def _seeded_sampling(model: BaseAlgorithm, seed: int) -> Iterator[None]:
    """Draw the policy's actions (a stochastic evaluation's, DQN's exploration) from
    ``seed``, as the envs are seeded, and give training its random state back after."""
    devices: list[int] = []
    if model.device.type == "cuda":
        index = model.device.index
        devices = [torch.cuda.current_device() if index is None else index]
    numpy_state = np.random.get_state()
    space = model.action_space  # DQN explores with its samples
    space_state = space.np_random.bit_generator.state
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        space.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
            space.np_random.bit_generator.state = space_state


def _check_of_this_run(run: RunDir, config: TrainConfig, checkpoint: Checkpoint) -> None:
    """Refuse a model folder saved by a run of another env or algorithm (``--model``)."""
    saved = checkpoint.info.get("config")
    if not isinstance(saved, dict):
        return  # saved by an older netgym, which recorded no config: loading tells
    trained = (saved.get("algo", {}).get("name"), saved.get("env", {}).get("id"))
    if trained != (config.algo.name, config.env.id):
        raise CheckpointError(
            f"{checkpoint.path} holds a model trained with {trained[0]} on {trained[1]}, but "
            f"{run.path} trains {config.algo.name} on {config.env.id}: evaluate a model "
            "with the run folder that trained it"
        )


def _saved_model(run: RunDir, which: str, keep: int) -> Checkpoint:
    """The model ``which`` names, its files checked."""
    if which == "latest":
        latest = CheckpointStore(run.checkpoints, keep).latest()
        if latest is None:
            raise CheckpointError(f"{run.checkpoints} holds no complete checkpoint")
        return latest
    directory = {"best": run.best, "final": run.final}.get(which, Path(which))
    if not directory.is_dir():
        raise CheckpointError(
            f"no model at {directory}: best appears after the first evaluation, final when "
            "training is done; or pass latest or a checkpoint folder"
        )
    return read_directory(directory)
