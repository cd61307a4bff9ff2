"""A2C and DQN train and resume too; VecNormalize statistics and the replay buffer carry over."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from stable_baselines3 import A2C, DQN
from stable_baselines3.common.save_util import save_to_zip_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from netgym_agent.algorithms import MODEL_FILE, saved_spaces
from netgym_agent.checkpoints import read_directory
from netgym_agent.errors import CheckpointError
from tests.agent.helpers import SMALL_CARTPOLE, checkpoint_dirs, run_train, write_config
from tests.servers import EnvApi

CASES = {
    "a2c": (A2C, {"n_steps": 8}),
    "dqn": (
        DQN,
        {
            "learning_starts": 100,
            "buffer_size": 5000,
            "train_freq": 4,
            "target_update_interval": 100,
        },
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_train_and_resume_keep_statistics(envapi: EnvApi, tmp_path: Path, name: str) -> None:
    cls, hyperparams = CASES[name]
    config = write_config(
        tmp_path / f"{name}.yaml",
        {
            **SMALL_CARTPOLE,
            "env": {"id": "CartPole-v1", "num_envs": 2},
            "algo": {"name": name, "policy": "MlpPolicy", "hyperparams": hyperparams},
            "normalize": {"norm_obs": True, "norm_reward": False},
            "total_timesteps": 600,
            "checkpoint": {"every_steps": 200, "keep": 2},
            "eval": {"every_steps": 300, "episodes": 2, "num_envs": 2},
        },
    )
    run_dir = tmp_path / "run"
    first = run_train(envapi, str(config), "--run-dir", str(run_dir))
    assert first.returncode == 0, first.stdout
    resumed = run_train(
        envapi, "--run-dir", str(run_dir), "--resume", "--set", "total_timesteps=1000"
    )
    assert resumed.returncode == 0, resumed.stdout
    assert "resumed from" in resumed.stdout

    final = run_dir / "final"
    assert read_directory(final).info["step"] >= 1000
    model = cls.load(final / "model.zip", device="cpu")
    assert model.num_timesteps >= 1000
    with (final / "vecnormalize.pkl").open("rb") as stream:
        statistics = pickle.load(stream)
    # Counted over every step of both segments, not restarted at the resume.
    assert statistics.obs_rms.count > 900
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    if name == "a2c":  # SB3's own default wrote them every 1,600 steps here: none at all
        assert len(events.Scalars("train/value_loss")) >= 3
    if name == "dqn":
        last = checkpoint_dirs(run_dir)[-1]
        assert (last / "replay_buffer.pkl").exists()
        # The model to use carries none: with Atari a buffer is GBs at every new best.
        assert not (final / "replay_buffer.pkl").exists()
        assert not (run_dir / "best" / "replay_buffer.pkl").exists()
        model.load_replay_buffer(last / "replay_buffer.pkl")
        assert model.replay_buffer is not None
        assert model.replay_buffer.size() * 2 >= 1000


def test_agent_imports_only_the_client() -> None:
    check = (
        "import sys, netgym_agent.trainer, netgym_agent.__main__\n"
        "bad = [m for m in ('netgym_envapi', 'netgym_emulator', 'fastapi', 'uvicorn')"
        " if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    sources = Path(__file__).resolve().parents[2] / "agents" / "netgym_agent"
    for path in sources.glob("*.py"):
        text = path.read_text()
        assert "netgym_envapi" not in text and "netgym_emulator" not in text, path


def test_a_saved_model_whose_spaces_do_not_load_here_is_a_checkpoint_error(tmp_path: Path) -> None:
    # As SB3 leaves out what does not unpickle (a space of another Gymnasium, say).
    save_to_zip_file(tmp_path / MODEL_FILE, data={"n_envs": 4})
    with pytest.raises(
        CheckpointError,
        match=r"model.zip does not load \(KeyError: 'observation_space'\): was it saved by "
        r"another version .* move \S+ out of the run folder to go on from the checkpoint before",
    ):
        saved_spaces(tmp_path)
