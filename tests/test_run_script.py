"""``scripts/run.sh``: both services up, and both gone however the script is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import netgym
from tests.servers import alive, descendants, free_ports

ROOT = Path(__file__).resolve().parents[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def wait_until_both_answer(
    script: subprocess.Popen[bytes], emulator_port: int, port: int, log: Path
) -> None:
    """Until the emulator service, then the envapi, answer their health checks."""
    deadline = time.monotonic() + 60
    for service in (emulator_port, port):
        while not answers(f"http://127.0.0.1:{service}/v1/health"):
            assert script.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)


@pytest.mark.parametrize("stop", ["Ctrl-C", "Ctrl-C twice", "SIGTERM", "SIGKILL"])
def test_run_script_stops_both_services(tmp_path: Path, stop: str) -> None:
    port, data_port, emulator_port = free_ports(3)
    environ = {
        **os.environ,
        "NETGYM_PORT": str(port),
        "NETGYM_DATA_PORT": str(data_port),
        "NETGYM_EMULATOR_PORT": str(emulator_port),
        "NETGYM_EMULATOR_GAMES_DIR": str(tmp_path),
    }
    environ.pop("NETGYM_TOKEN", None)
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        script = subprocess.Popen(
            ["scripts/run.sh"],
            cwd=ROOT,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
    try:
        wait_until_both_answer(script, emulator_port, port, log)
        started = len(log.read_text())
        services = descendants(script.pid)
        if stop.startswith("Ctrl-C"):
            os.killpg(script.pid, signal.SIGINT)  # what a terminal sends its foreground job
            if stop == "Ctrl-C twice":  # impatient: while the envapi shuts down
                time.sleep(0.1)
                os.killpg(script.pid, signal.SIGINT)
        elif stop == "SIGTERM":
            script.terminate()
        else:  # the script runs none of its own stopping: its services stop themselves
            script.kill()
        script.wait(30)
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
    # The envapi's helpers (its forkserver, multiprocessing's resource tracker) exit
    # as they find it gone, a moment after it.
    deadline = time.monotonic() + 10
    while [pid for pid in services if alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in services if alive(pid)], log.read_text()
    assert not answers(f"http://127.0.0.1:{port}/v1/health")
    assert not answers(f"http://127.0.0.1:{emulator_port}/v1/health")
    if stop != "SIGKILL":  # else both stop at once
        # The emulator service outlived the envapi, which never found it gone.
        assert "does not answer" not in log.read_text()[started:]


def test_help_names_both_services_and_every_setting() -> None:
    from netgym_emulator.settings import EmulatorSettings
    from netgym_envapi.settings import Settings

    run = subprocess.run(
        ["bash", "scripts/run.sh", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "emulator service" in run.stdout and "--data-port" in run.stdout
    emulator = subprocess.run(
        [ROOT / ".venv/bin/netgym-emulator", "--help"], capture_output=True, text=True, check=True
    )
    for settings, text in [(Settings, run.stdout), (EmulatorSettings, emulator.stdout)]:
        prefix = settings.model_config["env_prefix"]
        for name, field in settings.model_fields.items():
            assert f"{prefix}{name.upper()} (default " in text
            assert field.description, f"{name} needs a description for --help"


def test_run_script_gives_the_emulator_service_a_token_only_the_envapi_knows(
    tmp_path: Path,
) -> None:
    """Another local process cannot start or stop instances; the envapi's NES envs work."""
    port, data_port, emulator_port = free_ports(3)
    environ = {
        **os.environ,
        "NETGYM_PORT": str(port),
        "NETGYM_DATA_PORT": str(data_port),
        "NETGYM_EMULATOR_PORT": str(emulator_port),
    }
    for name in ("NETGYM_TOKEN", "NETGYM_EMULATOR_TOKEN", "NETGYM_EMULATOR_GAMES_DIR"):
        environ.pop(name, None)
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        script = subprocess.Popen(
            ["scripts/run.sh"], cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_until_both_answer(script, emulator_port, port, log)
        listing = f"http://127.0.0.1:{emulator_port}/v1/instances"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(listing, timeout=10)
        assert refused.value.code == 401
        with netgym.make("netgym/Catch-v0", url=f"http://127.0.0.1:{port}") as env:
            env.reset(seed=0)
            env.step(env.action_space.sample())
    finally:
        script.terminate()
        script.wait(30)
