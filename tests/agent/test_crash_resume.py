"""Done-when 2: SIGKILL at any moment, even mid-checkpoint, and ``--resume`` carries on.

No hook in the product: the test watches the checkpoints folder and SIGKILLs
the trainer as soon as a temporary checkpoint directory appears, or a few
milliseconds later. A checkpoint write takes about 20 ms (mostly fsync), so a
0.2 ms poll catches it; a kill that still came after the rename (the temporary
directory is gone afterwards) does not count, and the test tries again. After
every kill every ``step_*`` directory must load, and the next resume must start
from the newest of them.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from stable_baselines3 import PPO
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from netgym_agent.checkpoints import TEMP_PREFIX, read_directory
from tests.agent.helpers import (
    ROOT,
    SMALL_CARTPOLE,
    checkpoint_dirs,
    clean_env,
    run_train,
    train_command,
    write_config,
)
from tests.servers import EnvApi

KILLS_MID_WRITE = 3
DELAYS_S = (0.0, 0.002, 0.006)


def temporaries(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)]


def kill_during_a_write(
    trainer: subprocess.Popen[bytes], folder: Path, delay: float, old: list[Path]
) -> None:
    """SIGKILL ``delay`` after a new checkpoint write starts (once one has completed)."""
    deadline = time.monotonic() + 90
    while not (set(temporaries(folder)) - set(old) and list(folder.glob("step_*"))):
        assert trainer.poll() is None, "the trainer ended before it wrote a checkpoint"
        assert time.monotonic() < deadline, "no checkpoint write seen"
        time.sleep(0.0002)
    if delay:
        time.sleep(delay)
    trainer.kill()
    trainer.wait()


def assert_every_checkpoint_loads(run_dir: Path) -> int:
    """Every complete checkpoint verifies and loads; returns the newest step."""
    steps = []
    for path in checkpoint_dirs(run_dir):
        checkpoint = read_directory(path)
        model = PPO.load(path / "model.zip", device="cpu")
        assert model.num_timesteps == checkpoint.step
        steps.append(checkpoint.step)
    assert steps, "no complete checkpoint"
    return max(steps)


@pytest.mark.slow
def test_sigkill_during_checkpoint_writes_then_resume(envapi: EnvApi, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "crash.yaml",
        {
            **SMALL_CARTPOLE,
            "total_timesteps": 6144,
            "checkpoint": {"every_steps": 64, "keep": 3},
        },
    )
    run_dir = tmp_path / "run"
    folder = run_dir / "checkpoints"
    expected_start: int | None = None
    mid_write = 0
    for attempt in range(24):  # most land inside a write; a loaded machine misses more
        args = [str(config), "--run-dir", str(run_dir)]
        if expected_start is not None:
            args = ["--run-dir", str(run_dir), "--resume"]
        leftovers = temporaries(folder)
        log = tmp_path / f"attempt-{attempt}.log"
        with log.open("w") as out:
            trainer = subprocess.Popen(
                train_command(envapi, *args),
                cwd=ROOT,
                env=clean_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        kill_during_a_write(trainer, folder, DELAYS_S[mid_write % len(DELAYS_S)], leftovers)
        output = log.read_text()
        if expected_start is not None:
            assert f"resumed from {folder / f'step_{expected_start:09d}'} " in output, output
        if temporaries(folder):
            mid_write += 1
        expected_start = assert_every_checkpoint_loads(run_dir)
        if mid_write == KILLS_MID_WRITE:
            break
    assert mid_write == KILLS_MID_WRITE, f"only {mid_write} kills landed inside a write"
    print(f"{mid_write} of {attempt + 1} kills landed inside a checkpoint write")

    result = run_train(envapi, "--run-dir", str(run_dir), "--resume")
    assert result.returncode == 0, result.stdout
    assert "removed an incomplete checkpoint" in result.stdout
    assert f"resumed from {folder / f'step_{expected_start:09d}'} " in result.stdout
    done = re.search(r"training done at step ([\d,]+)", result.stdout)
    assert done and int(done.group(1).replace(",", "")) >= 6144, result.stdout
    assert not temporaries(folder) and not temporaries(run_dir)
    assert assert_every_checkpoint_loads(run_dir) >= 6144
    # What the killed runs logged past their checkpoints is purged: one curve, no zig-zag.
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    steps = [e.step for e in events.Scalars("time/fps")]
    assert steps == sorted(set(steps)) and steps[-1] >= 6144, steps
