"""Run the training command as a subprocess, as a user would, and read its run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.servers import EnvApi

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "agents" / "configs"

SMALL_CARTPOLE: dict[str, Any] = {
    "env": {"id": "CartPole-v1", "num_envs": 4},
    "algo": {
        "name": "ppo",
        "policy": "MlpPolicy",
        "hyperparams": {"n_steps": 16, "batch_size": 64, "n_epochs": 2},
    },
    "total_timesteps": 1024,
    "seed": 0,
    "device": "cpu",
    "torch_threads": 1,
    "eval": {"every_steps": 0},
    "checkpoint": {"every_steps": 256, "keep": 3},
    "progress_every_s": 0.5,
}


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Write a config dict as YAML; returns the path."""
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def train_command(server: EnvApi | None, *args: str) -> list[str]:
    """``python -m netgym_agent train ARGS --url U --token T``."""
    command = [sys.executable, "-m", "netgym_agent", "train", *args]
    if server is not None:
        command += ["--url", server.url, "--token", str(server.token)]
    return command


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without settings that would change the run (GPU, server)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETGYM_")}
    return {**env, "CUDA_VISIBLE_DEVICES": "", **extra}


def run_train(
    server: EnvApi | None, *args: str, timeout: float = 300, cwd: Path = ROOT, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the training command to the end; stdout and stderr together in ``stdout``."""
    return subprocess.run(
        train_command(server, *args),
        cwd=cwd,
        env=clean_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def start_train(server: EnvApi | None, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start the training command in the background, stdout and stderr into ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            train_command(server, *args),
            cwd=ROOT,
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def run_evaluate(
    server: EnvApi, run_dir: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``netgym_agent evaluate RUN_DIR ARGS`` against ``server`` to the end."""
    return subprocess.run(
        [
            *train_command(None)[:3],
            "evaluate",
            str(run_dir),
            *args,
            *("--url", server.url, "--token", str(server.token)),
        ],
        cwd=ROOT,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def evaluations(run_dir: Path) -> list[dict[str, Any]]:
    """The run's ``evaluations.jsonl`` records."""
    path = run_dir / "evaluations.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """The complete (renamed) checkpoints of a run, oldest first."""
    return sorted((run_dir / "checkpoints").glob("step_*"))
