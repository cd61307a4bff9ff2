"""A run whose env has changed since it started (an edited game) says so, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent.helpers import SMALL_CARTPOLE, run_evaluate, run_train, write_config
from tests.servers import run_envapi


def test_evaluate_and_resume_say_the_env_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size_file = tmp_path / "size"
    size_file.write_text("3")
    monkeypatch.setenv("NETGYM_TEST_SIZE_FILE", str(size_file))  # read by the envapi's envs
    config = {
        **SMALL_CARTPOLE,
        "env": {"id": "netgym-test/Resizing-v0", "num_envs": 2},
        "total_timesteps": 256,
    }
    config_file = write_config(tmp_path / "resizing.yaml", config)
    run_dir = tmp_path / "run"
    with run_envapi(tmp_path) as envapi:
        trained = run_train(envapi, str(config_file), "--run-dir", str(run_dir))
        assert trained.returncode == 0, trained.stdout
        size_file.write_text("4")  # the env changes
        changed = "netgym-test/Resizing-v0 now has the observation space Box(0.0, 1.0, (4,)"
        evaluated = run_evaluate(envapi, run_dir, "--model", "final", "--episodes", "2")
        assert evaluated.returncode == 1, evaluated.stderr
        assert changed in evaluated.stderr and "Traceback" not in evaluated.stderr
        assert "trained on Box(0.0, 1.0, (3,)" in evaluated.stderr
        resumed = run_train(
            envapi, "--run-dir", str(run_dir), "--resume", "--set", "total_timesteps=512"
        )
        assert resumed.returncode == 1, resumed.stdout
        assert changed in resumed.stdout and "Traceback" not in resumed.stdout
