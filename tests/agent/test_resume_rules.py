"""What a resume goes on from, and what it refuses: a run's edited config, a
finished run, a best model and curves from steps the resume plays again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
from stable_baselines3 import DQN
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from netgym_agent import algorithms
from netgym_agent.checkpoints import read_directory
from netgym_agent.config import TrainConfig
from tests.agent.helpers import SMALL_CARTPOLE, run_evaluate, run_train, write_config
from tests.servers import EnvApi


def test_an_edited_run_config_is_refused_and_a_finished_run_left_alone(
    envapi: EnvApi, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "small.yaml", {**SMALL_CARTPOLE, "total_timesteps": 512})
    run_dir = tmp_path / "run"
    first = run_train(envapi, str(config), "--run-dir", str(run_dir), "--set", "seed=1")
    assert first.returncode == 0, first.stdout
    events = sorted((run_dir / "tensorboard").iterdir())

    finished = run_train(envapi, "--run-dir", str(run_dir), "--resume")
    assert finished.returncode == 0, finished.stdout
    assert f"{run_dir} has finished: its final model (step 512)" in finished.stdout
    assert "resume with --set total_timesteps=<more than 512>" in finished.stdout
    assert sorted((run_dir / "tensorboard").iterdir()) == events  # nothing written

    saved = run_dir / "config.yaml"
    original = saved.read_text()
    assert "normalize: null" in original
    saved.write_text(original.replace("normalize: null", "normalize: true"))
    edited = run_train(
        envapi, "--run-dir", str(run_dir), "--resume", "--set", "total_timesteps=768"
    )
    assert edited.returncode == 2, edited.stdout
    assert "changes normalize since its checkpoint at step 512 was saved" in edited.stdout

    assert saved.read_text().count("resumed") == 0  # a refused resume changes nothing
    # A --set that puts back what the checkpoint was saved with is no change.
    resumed = run_train(
        envapi,
        *("--run-dir", str(run_dir), "--resume"),
        *("--set", "normalize=null", "--set", "total_timesteps=768"),
    )
    assert resumed.returncode == 0, resumed.stdout
    header = [line for line in saved.read_text().splitlines() if line.startswith("#")]
    assert f"from {config}" in header[0] and "--set seed=1" in header[1]  # where it came from
    assert "resumed, from" in header[2] and "--set normalize=null" in header[3]
    assert "--set total_timesteps=768" in header[4]


def test_a_resume_from_step_0_sets_aside_the_best_model_and_curves_of_the_old_steps(
    envapi: EnvApi, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "small.yaml",
        {
            **SMALL_CARTPOLE,
            "total_timesteps": 512,
            "eval": {"every_steps": 256, "episodes": 2, "num_envs": 2},
        },
    )
    run_dir = tmp_path / "run"
    first = run_train(envapi, str(config), "--run-dir", str(run_dir))
    assert first.returncode == 0, first.stdout
    old_best = read_directory(run_dir / "best").info["step"]
    # As if killed before its first checkpoint was complete.
    shutil.rmtree(run_dir / "checkpoints")
    shutil.rmtree(run_dir / "final")

    again = run_train(envapi, "--run-dir", str(run_dir), "--resume", "--set", "total_timesteps=256")
    assert again.returncode == 0, again.stdout
    assert "has no complete checkpoint: starting at step 0" in again.stdout
    assert "set aside best/, saved past step 0 where the run goes on" in again.stdout
    aside = run_dir / f"discarded-best-step_{old_best:09d}"
    assert read_directory(aside).info["step"] == old_best
    assert read_directory(run_dir / "best").info["step"] == 256  # this run's own
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("eval/mean_return")] == [256]


def test_evaluate_plays_as_the_runs_evaluations_did(envapi: EnvApi, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "small.yaml",
        {
            **SMALL_CARTPOLE,
            "total_timesteps": 256,
            "eval": {"every_steps": 256, "episodes": 2, "num_envs": 2, "deterministic": False},
        },
    )
    run_dir = tmp_path / "run"
    assert run_train(envapi, str(config), "--run-dir", str(run_dir)).returncode == 0
    for flags, deterministic in [((), False), (("--deterministic",), True)]:
        result = run_evaluate(envapi, run_dir, "--model", "final", *flags)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.splitlines()[-1])["deterministic"] is deterministic


def test_evaluate_refuses_a_model_of_another_run(envapi: EnvApi, tmp_path: Path) -> None:
    runs = {}
    for env_id in ("CartPole-v1", "Acrobot-v1"):
        config = {**SMALL_CARTPOLE, "env": {"id": env_id, "num_envs": 2}, "total_timesteps": 64}
        runs[env_id] = tmp_path / env_id
        path = write_config(tmp_path / f"{env_id}.yaml", config)
        assert run_train(envapi, str(path), "--run-dir", str(runs[env_id])).returncode == 0
    other = runs["Acrobot-v1"] / "final"
    result = run_evaluate(envapi, runs["CartPole-v1"], "--model", str(other))
    assert result.returncode == 1, result.stderr
    assert (
        f"{other} holds a model trained with ppo on Acrobot-v1, but {runs['CartPole-v1']} "
        "trains ppo on CartPole-v1: evaluate a model with the run folder that trained it"
    ) in result.stderr


def test_an_eval_num_envs_above_the_servers_limit_is_a_config_error(
    envapi: EnvApi, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "small.yaml",
        {**SMALL_CARTPOLE, "eval": {"every_steps": 256, "episodes": 100, "num_envs": 100}},
    )
    run_dir = tmp_path / "run"
    result = run_train(envapi, str(config), "--run-dir", str(run_dir))
    assert result.returncode == 2, result.stdout
    assert "eval.num_envs: num_envs=100 is above 64" in result.stdout
    assert "lower eval.num_envs" in result.stdout
    # Found before training, not at the first evaluation: the run saved nothing.
    assert "checkpoint" not in result.stdout
    assert not run_dir.exists()
    fixed = config.read_text().replace("num_envs: 100", "num_envs: 2")
    config.write_text(fixed.replace("episodes: 100", "episodes: 2"))
    assert run_train(envapi, str(config), "--run-dir", str(run_dir)).returncode == 0
    evaluated = run_evaluate(
        envapi, run_dir, "--model", "latest", "--num-envs", "100", "--episodes", "100"
    )
    assert evaluated.returncode == 2, evaluated.stderr
    assert "--num-envs: num_envs=100 is above 64" in evaluated.stderr


def test_a_dqn_resumed_without_its_replay_buffer_fills_it_before_learning(
    tmp_path: Path,
) -> None:
    config = TrainConfig.model_validate(
        {
            **SMALL_CARTPOLE,
            "algo": {"name": "dqn", "policy": "MlpPolicy", "hyperparams": {"learning_starts": 300}},
        }
    )
    model = DQN("MlpPolicy", gym.make("CartPole-v1"), learning_starts=300)
    model.num_timesteps = 5000
    assert algorithms.refill_replay_buffer(config, model, tmp_path) == 300
    assert model.learning_starts == 5300
    (tmp_path / algorithms.REPLAY_BUFFER_FILE).write_bytes(b"")
    assert algorithms.refill_replay_buffer(config, model, tmp_path) is None
