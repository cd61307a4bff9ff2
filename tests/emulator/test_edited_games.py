"""A game edited while it is played: training never goes on with another game
without a word, whether its envs reconnect or its run resumes."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import netgym
from netgym.errors import EnvError
from netgym.sb3 import ReconnectingVecEnv
from tests.agent.helpers import SMALL_CARTPOLE, run_evaluate, run_train, write_config
from tests.emulator.conftest import EFP_ROM, FAULT_MANIFEST, PLAIN_SCRIPT, Stack
from tests.emulator.test_service import env_instance_pid


@pytest.fixture
def game(stack: Stack, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A game folder of this test's own (its name is the test's parameter), removed afterwards."""
    name = request.param
    folder = stack.games / name.lower()
    folder.mkdir()
    (folder / "game.lua").write_text(PLAIN_SCRIPT)
    (folder / "game.toml").write_text(FAULT_MANIFEST.format(name=name, rom=EFP_ROM))
    yield folder
    shutil.rmtree(folder)


@pytest.mark.parametrize("game", ["EditedReconnect"], indirect=True)
def test_envs_reconnecting_to_an_edited_game_stop(stack: Stack, game: Path) -> None:
    env_id = "netgym/EditedReconnect-v0"
    with netgym.make("CartPole-v1", **stack.kwargs) as classic:
        assert isinstance(classic, netgym.RemoteEnv) and classic.env_revision is None
    envs = ReconnectingVecEnv(env_id, 1, **stack.kwargs)
    try:
        envs.reset()
        envs.step(np.array([0]))
        revision = envs.remote.env_revision
        assert isinstance(revision, str) and revision
        (game / "game.lua").write_text(PLAIN_SCRIPT + "-- edited\n")
        os.kill(env_instance_pid(stack, envs.remote), signal.SIGKILL)
        with pytest.raises(EnvError, match=rf"{env_id} has changed since this env was made"):
            for _ in range(5):
                envs.step(np.array([0]))
        assert envs.reconnects == 1
    finally:
        envs.close()


@pytest.mark.parametrize("game", ["EditedResume"], indirect=True)
def test_a_run_does_not_resume_on_an_edited_game(stack: Stack, game: Path, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "edited.yaml",
        {
            **SMALL_CARTPOLE,
            "env": {"id": "netgym/EditedResume-v0", "num_envs": 1},
            "algo": {
                "name": "ppo",
                "policy": "CnnPolicy",
                "hyperparams": {"n_steps": 16, "batch_size": 16, "n_epochs": 1},
            },
            "total_timesteps": 32,
            "checkpoint": {"every_steps": 16, "keep": 2},
        },
    )
    first = run_train(stack.envapi, str(config), cwd=tmp_path)
    assert first.returncode == 0, first.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    (game / "game.lua").write_text(PLAIN_SCRIPT + "-- edited\n")
    evaluated = run_evaluate(stack.envapi, run_dir, "--model", "final", "--episodes", "1")
    assert evaluated.returncode == 1, evaluated.stderr
    assert "EditedResume-v0 has changed since the model played it" in evaluated.stderr
    shutil.rmtree(run_dir / "final")  # as if stopped after its last checkpoint
    before = (run_dir / "config.yaml").read_text()
    resumed = run_train(stack.envapi, "--run-dir", str(run_dir), "--resume")
    assert resumed.returncode == 1, resumed.stdout
    assert "netgym/EditedResume-v0 has changed since this run's last checkpoint" in resumed.stdout
    assert (run_dir / "config.yaml").read_text() == before  # refused: nothing changed
    # What the Compose agent runs starts a new run instead.
    latest = run_train(stack.envapi, str(config), "--resume-latest", cwd=tmp_path)
    assert latest.returncode == 0, latest.stdout
    assert (
        f"not resuming {run_dir.relative_to(tmp_path)}: its game has changed since its "
        "checkpoint at step 32"
    ) in latest.stdout
    (new_run,) = set((tmp_path / "runs").iterdir()) - {run_dir}
    shutil.rmtree(new_run / "final")  # as if stopped after its last checkpoint
    # Put back as it was, the newest run (made on the edited game) does not resume, and
    # the run made on the game as it is now does.
    (game / "game.lua").write_text(PLAIN_SCRIPT)
    again = run_train(stack.envapi, str(config), "--resume-latest", cwd=tmp_path)
    assert again.returncode == 0, again.stdout
    assert (
        f"not resuming {new_run.relative_to(tmp_path)}: its game has changed since its "
        f"checkpoint at step 32"
    ) in again.stdout
    assert (
        f"resuming {run_dir.relative_to(tmp_path)}, the newest unfinished run of this "
        "config whose checkpoint was saved on the game as it is now"
    ) in again.stdout
    assert (run_dir / "final").is_dir()
    assert len(list((tmp_path / "runs").iterdir())) == 2


@pytest.mark.parametrize("game", ["EditedEval"], indirect=True)
def test_an_evaluation_on_another_revision_of_the_game_stops(stack: Stack, game: Path) -> None:
    from stable_baselines3 import PPO

    from netgym_agent.config import TrainConfig
    from netgym_agent.errors import EnvChangedError
    from netgym_agent.evaluation import evaluate

    config = TrainConfig.model_validate(
        {
            **SMALL_CARTPOLE,
            "env": {"id": "netgym/EditedEval-v0", "num_envs": 1},
            "algo": {"name": "ppo", "policy": "CnnPolicy"},
        }
    )
    envs = ReconnectingVecEnv("netgym/EditedEval-v0", 1, **stack.kwargs)
    try:
        model = PPO("CnnPolicy", envs, n_steps=16, batch_size=16, device="cpu")
        with pytest.raises(EnvChangedError, match=r"changed since the model played it"):
            evaluate(model, config, episodes=1, num_envs=1, revision="0" * 16, **stack.kwargs)
    finally:
        envs.close()
