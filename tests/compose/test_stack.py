"""The Compose stack as a user runs it: `docker compose up`, then train against it.

These build the three images and run them on a real Docker engine (see
conftest.py): a few minutes the first time, seconds once the layers are cached.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time

import httpx
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import netgym
from netgym.errors import AuthenticationError
from tests.compose.conftest import Stack

# The first test also waits for the images to build: minutes on a new machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

TRAIN_BRIEFLY = [
    "--set", "total_timesteps=1024",
    "--set", "eval.every_steps=1024",
    "--set", "eval.episodes=2",
    "--set", "checkpoint.every_steps=1024",
]  # fmt: skip


def test_envapi_serves_atari_and_the_games_folder_through_the_emulator_service(
    stack: Stack,
) -> None:
    reply = httpx.get(
        f"{stack.url}/v1/envs", headers={"Authorization": f"Bearer {stack.token}"}, timeout=30
    )
    ids = {env["env_id"] for env in reply.json()["envs"]}
    # Catch's ROM is built from source by the emulator container at its start.
    assert {"netgym/Catch-v0", "netgym/EscapeFromPong-v0", "ALE/Pong-v5"} <= ids

    env = netgym.make("netgym/Catch-v0", url=stack.url, token=stack.token)
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()
    envs = netgym.make_vec("ALE/Pong-v5", num_envs=2, url=stack.url, token=stack.token)
    try:
        obs, _ = envs.reset(seed=0)
        obs, rewards, _, _, _ = envs.step(np.zeros(2, dtype=np.int64))
        assert obs.shape == (2, 210, 160, 3) and rewards.shape == (2,)
    finally:
        envs.close()


SHARING_PROBE = """
import json, os, urllib.request, netgym
envs = netgym.make_vec("netgym/Catch-v0", num_envs=2)  # NETGYM_URL and NETGYM_TOKEN
envs.reset(seed=0)
envs.step(envs.action_space.sample())
listing = urllib.request.Request(  # the emulator service's token is Compose's NETGYM_TOKEN
    "http://emulator:8002/v1/instances",
    headers={"Authorization": "Bearer " + os.environ["NETGYM_TOKEN"]},
)
with urllib.request.urlopen(listing) as reply:
    instances = [i for i in json.load(reply)["instances"] if i["alive"]]
print(json.dumps({
    "results_in_shared_memory": envs._connection.shared_results is not None,
    "screen_files": [i["screen_file"] for i in instances],
}))
envs.close()
"""


def test_screens_and_step_results_cross_containers_through_shared_volumes(stack: Stack) -> None:
    run = stack.compose("run", "--rm", "--entrypoint", "python3", "agent-cpu", "-c", SHARING_PROBE)
    found = json.loads(run.stdout.strip().splitlines()[-1])
    # agent <- envapi: step results in the shared tmpfs volume, not through the socket.
    assert found["results_in_shared_memory"]
    # envapi <- emulator: each instance writes its screen to a file the envapi maps.
    assert len(found["screen_files"]) == 2
    assert all(path and path.startswith("/run/netgym/screens/") for path in found["screen_files"])


def test_envapi_refuses_a_wrong_token(stack: Stack) -> None:
    with pytest.raises(AuthenticationError, match="token"):
        netgym.make("CartPole-v1", url=stack.url, token="not-the-token")


def test_cpu_agent_trains_on_an_emulator_game_and_saves_its_run(stack: Stack) -> None:
    run = stack.compose(
        "run", "--rm", "agent-cpu", "train", "configs/catch_ppo.yaml",
        "--run-dir", "runs/compose-catch", *TRAIN_BRIEFLY,
    )  # fmt: skip
    assert "training done at step 1,024" in run.stdout, run.stdout[-2000:]
    folder = stack.folder / "runs" / "compose-catch"
    assert (folder / "final" / "model.zip").is_file()
    assert (folder / "evaluations.jsonl").read_text().strip()
    assert any((folder / "tensorboard").rglob("events.out.tfevents.*"))

    # The tensorboard service shows it (it rereads the runs folder every few seconds).
    deadline = time.monotonic() + 90
    runs: list[str] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            runs = httpx.get(f"{stack.tensorboard_url}/data/runs", timeout=10).json()
            if any(run.startswith("compose-catch") for run in runs):
                break
        time.sleep(1)
    assert any(run.startswith("compose-catch") for run in runs), runs


def test_stopped_agent_saves_a_checkpoint_and_goes_on_with_its_run_when_started_again(
    stack: Stack,
) -> None:
    """The agent's own command (``--resume-latest``), stopped as ``docker compose stop`` does."""
    settings = {"NETGYM_AGENT_CONFIG": "catch_ppo.yaml"}
    step = re.compile(r"stopped by SIGTERM at step ([\d,]+)")
    first = stack.compose("run", "-d", "agent-cpu", settings=settings).stdout.split()[-1]
    try:
        stack.logs_until(first, "| return")  # a progress line: it is training
        subprocess.run(["docker", "stop", "-t", "100", first], check=True, timeout=120)
        output = stack.logs_until(
            first,
            "continue with: NETGYM_AGENT_CONFIG=catch_ppo.yaml docker compose up emulator "
            "envapi agent-cpu tensorboard",
        )
        stopped_at = step.search(output)
        assert stopped_at, output[-2000:]
        assert _exit_code(first) == 143
    finally:
        subprocess.run(["docker", "rm", "-f", first], capture_output=True)
    (run_dir,) = [p for p in (stack.folder / "runs").iterdir() if p.name.startswith("catch_ppo-")]

    again = stack.compose("run", "-d", "agent-cpu", settings=settings).stdout.split()[-1]
    try:
        output = stack.logs_until(again, "resumed from")
        assert f"resuming the newest unfinished run of this config: runs/{run_dir.name}" in output
        assert f"at step {stopped_at.group(1)} " in output
    finally:
        subprocess.run(["docker", "rm", "-f", again], capture_output=True)


def _exit_code(container: str) -> int:
    inspect = ["docker", "inspect", "-f", "{{.State.ExitCode}}", container]
    return int(subprocess.run(inspect, capture_output=True, text=True, check=True).stdout)


def test_agent_that_requires_a_gpu_stops_saying_why_when_there_is_none(stack: Stack) -> None:
    run = stack.compose(
        "run", "--rm", "-e", "NETGYM_REQUIRE_GPU=1", "agent-cpu",
        "train", "configs/catch_ppo.yaml", "--set", "device=auto",
        check=False,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout[-2000:]
    output = run.stdout + run.stderr
    assert "a GPU is required" in output and "NVIDIA Container Toolkit" in output


def test_killed_emulator_service_restarts_and_its_games_are_served_again(stack: Stack) -> None:
    emulator = stack.container("emulator")
    restarts = stack.restart_count("emulator")
    # SIGKILL the service, the only child of the container's init: no clean-up runs.
    # Detached: the container stops at once, and an attached exec could then fail.
    stack.compose(
        "exec", "-d", "emulator", "python3", "-c",
        "import os; os.kill(int(open('/proc/1/task/1/children').read().split()[0]), 9)",
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while stack.restart_count("emulator") == restarts and time.monotonic() < deadline:
        time.sleep(0.5)
    assert stack.restart_count("emulator") == restarts + 1
    stack.wait_healthy("emulator")
    assert stack.container("emulator") == emulator  # the same container, restarted
    # The envapi reads the games again within 5 s of a failed read.
    deadline = time.monotonic() + 60
    while "netgym/Catch-v0" not in netgym.list_envs(stack.url, stack.token):
        assert time.monotonic() < deadline, "the envapi does not list the emulator's games"
        time.sleep(0.5)
    env = netgym.make("netgym/Catch-v0", url=stack.url, token=stack.token)
    try:
        env.reset(seed=0)
        env.step(0)
    finally:
        env.close()
