"""A full tmpfs (/dev/shm is shared with every program of the host) fails a start or
a share cleanly, instead of killing a session with SIGBUS at its first read."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import netgym
from netgym.errors import EnvError
from tests.emulator.conftest import games_dir
from tests.servers import run_emulator, run_envapi


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: less than one screen file (245 KB)."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_no_room_for_a_screen_file_fails_the_reset_with_the_reason(
    tmp_path: Path, small_tmpfs: Path
) -> None:
    with (
        run_emulator(tmp_path, games_dir(tmp_path), screen_dir=str(small_tmpfs)) as (url, _),
        run_envapi(tmp_path, emulator_url=url) as envapi,
    ):
        with (
            netgym.make("netgym/Plain-v0", url=envapi.url, token=envapi.token) as env,
            pytest.raises(EnvError, match=r"no room for an instance's screen file in"),
        ):
            env.reset(seed=0)
        assert httpx.get(f"{url}/v1/instances").json()["instances"] == []
        assert httpx.get(f"{url}/v1/health").status_code == 200


def test_no_room_for_a_sessions_results_file_sends_its_results_by_socket(
    tmp_path: Path, small_tmpfs: Path
) -> None:
    with run_envapi(tmp_path, shared_memory_dir=str(small_tmpfs)) as envapi:
        with netgym.make_vec("ALE/Pong-v5", 2, url=envapi.url, token=envapi.token) as envs:
            observations, _ = envs.reset(seed=0)
            assert observations.shape == (2, 210, 160, 3)
            envs.step(envs.action_space.sample())
        assert "shares no memory" in envapi.log.read_text()
