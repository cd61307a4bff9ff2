"""A run whose env has changed since it started (an edited game) says so, not a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.agent.helpers import SMALL_CARTPOLE, run_evaluate, run_train, write_config
from tests.servers import run_envapi


@pytest.mark.parametrize(
    ("shape", "changed_shape", "normalize", "space"),
    [
        ("3", "4", None, "Box(0.0, 1.0, (4,)"),
        # VecNormalize makes the model's image space floats: no change for all that.
        ("8 8 3", "8 8 4", {"norm_obs": True}, "Box(-10.0, 10.0, (8, 8, 4)"),
    ],
    ids=["vector", "image-normalized"],
)
def test_evaluate_and_resume_say_the_env_changed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    shape: str,
    changed_shape: str,
    normalize: dict[str, Any] | None,
    space: str,
) -> None:
    size_file = tmp_path / "size"
    size_file.write_text(shape)
    monkeypatch.setenv("NETGYM_TEST_SIZE_FILE", str(size_file))  # read by the envapi's envs
    config = {
        **SMALL_CARTPOLE,
        "env": {"id": "netgym-test/Resizing-v0", "num_envs": 2},
        "total_timesteps": 256,
        "normalize": normalize,
    }
    config_file = write_config(tmp_path / "resizing.yaml", config)
    run_dir = tmp_path / "run"
    with run_envapi(tmp_path) as envapi:
        trained = run_train(envapi, str(config_file), "--run-dir", str(run_dir))
        assert trained.returncode == 0, trained.stdout
        one_episode = ("--model", "final", "--episodes", "1")
        same = run_evaluate(envapi, run_dir, *one_episode)
        assert same.returncode == 0, same.stderr
        size_file.write_text(changed_shape)  # the env changes
        changed = f"netgym-test/Resizing-v0 now has the observation space {space}"
        evaluated = run_evaluate(envapi, run_dir, *one_episode)
        assert evaluated.returncode == 1, evaluated.stderr
        assert changed in evaluated.stderr and "Traceback" not in evaluated.stderr
        assert "but this run's model was trained on" in evaluated.stderr
        resumed = run_train(
            envapi, "--run-dir", str(run_dir), "--resume", "--set", "total_timesteps=512"
        )
        assert resumed.returncode == 1, resumed.stdout
        assert changed in resumed.stdout and "Traceback" not in resumed.stdout
