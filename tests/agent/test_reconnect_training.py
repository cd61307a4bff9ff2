"""Issue 4, done-when 3: the envapi killed and restarted mid-training; training goes on.

Runs ``python -m netgym_agent train`` as a subprocess on a small CartPole config
against a private envapi, SIGKILLs the envapi (and its session and worker
processes) once episodes are being logged, starts it again on the same ports a
second later, and checks that the run reached its total steps with exit status
0 and that the reconnect was logged (``netgym.sb3.ReconnectingVecEnv`` warns on
the ``"netgym"`` logger).
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.agent.helpers import SMALL_CARTPOLE, start_train, write_config
from tests.servers import EnvApi, kill_tree, restart_envapi, run_envapi

TOTAL_STEPS = 20_000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EnvApi]:
    """A private envapi: this test kills it."""
    with run_envapi(tmp_path) as envapi:
        yield envapi


def monitor_rows(run_dir: Path) -> int:
    """Episodes the run's VecMonitor CSVs hold so far (each starts with 2 header lines)."""
    return sum(
        max(0, len(path.read_text().splitlines()) - 2)
        for path in run_dir.glob("monitor/*.monitor.csv")
    )


def wait_for_episodes(
    trainer: subprocess.Popen[bytes], run_dir: Path, log: Path, count: int
) -> None:
    """Until the run's monitor logs hold ``count`` episodes: training is under way."""
    deadline = time.monotonic() + 120
    while monitor_rows(run_dir) < count:
        assert trainer.poll() is None, f"training ended early:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no episodes logged:\n{log.read_text()}"
        time.sleep(0.1)


@pytest.mark.slow
def test_training_goes_on_across_an_envapi_restart(server: EnvApi, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "cartpole_reconnect.yaml",
        {
            **SMALL_CARTPOLE,
            "algo": {
                "name": "ppo",
                "policy": "MlpPolicy",
                "hyperparams": {"n_steps": 64, "batch_size": 128, "n_epochs": 4},
            },
            "total_timesteps": TOTAL_STEPS,
            "eval": {"every_steps": 0},  # evaluation opens sessions of its own
            "checkpoint": {"every_steps": 0},
        },
    )
    run_dir = tmp_path / "run"
    log = tmp_path / "train.log"
    trainer = start_train(server, log, str(config), "--run-dir", str(run_dir))
    try:
        wait_for_episodes(trainer, run_dir, log, 10)
        kill_tree(server.process)
        time.sleep(1.0)  # the trainer meets a dead envapi, then a starting one
        restart_envapi(server)
        status = trainer.wait(240)
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()
    output = log.read_text()
    assert status == 0, output
    done = re.search(r"training done at step ([\d,]+)", output)
    assert done is not None, output
    assert int(done.group(1).replace(",", "")) >= TOTAL_STEPS, output
    assert "lost session" in output and f"reconnected to {server.url}" in output, output
    assert re.search(r"\| \d+ reconnects?\b", output), output  # in the progress line
    assert (run_dir / "final").is_dir(), output


def run_into_an_outage(
    server: EnvApi,
    tmp_path: Path,
    reconnect_timeout_s: float,
    during: Callable[[subprocess.Popen[bytes], Path], None] = lambda trainer, log: None,
    wait_s: float = 120,
) -> tuple[int, str]:
    """Train until episodes are logged, kill the envapi for good, call ``during``, and
    wait up to ``wait_s`` for the trainer's exit: its status and output."""
    config = write_config(
        tmp_path / "outage.yaml",
        {
            **SMALL_CARTPOLE,
            "env": {**SMALL_CARTPOLE["env"], "reconnect_timeout_s": reconnect_timeout_s},
            "total_timesteps": 10**6,
            "eval": {"every_steps": 0},
        },
    )
    log = tmp_path / "train.log"
    trainer = start_train(server, log, str(config), "--run-dir", str(tmp_path / "run"))
    try:
        wait_for_episodes(trainer, tmp_path / "run", log, 5)
        kill_tree(server.process)
        during(trainer, log)
        status = trainer.wait(wait_s)
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()
    return status, log.read_text()


def test_a_run_whose_envapi_stays_gone_stops_with_a_checkpoint_and_one_error(
    server: EnvApi, tmp_path: Path
) -> None:
    status, output = run_into_an_outage(server, tmp_path, reconnect_timeout_s=2)
    assert status == 1, output
    assert re.search(r"training stopped at step [\d,]+; checkpoint \S+step_", output), output
    assert output.count("could not open a new one") == 1, output
    assert "within reconnect_timeout_s=2 s" in output, output
    assert output.count("reconnect_timeout_s to wait longer") == 1, output
    assert "Raise env.reconnect_timeout_s to wait longer" in output, output


def test_a_stop_while_reconnecting_does_not_wait_for_the_envapi(
    server: EnvApi, tmp_path: Path
) -> None:
    def interrupt_the_reconnect(trainer: subprocess.Popen[bytes], log: Path) -> None:
        deadline = time.monotonic() + 60
        while "lost session" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        trainer.send_signal(signal.SIGINT)

    status, output = run_into_an_outage(
        server,
        tmp_path,
        120,
        interrupt_the_reconnect,
        wait_s=30,  # not reconnect_timeout_s
    )
    assert status == 130, output
    assert re.search(r"stopped by SIGINT at step [\d,]+; checkpoint \S+step_", output), output
    assert "error" not in output.split("SIGINT:")[-1], output
