"""The whole Compose stack, built from a copy of this checkout, on a real Docker engine.

The copy holds what git tracks (and untracked files it does not ignore), so
the images build as they would from a fresh clone; the checkout itself is
never written to. Without a Docker engine and Compose these tests are skipped,
except in CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import free_ports

ROOT = Path(__file__).resolve().parents[2]
CONTAINER_UID = 1000  # the images' user; a root caller hands its folders to it
BUILD_TIMEOUT_S = 1800
HEALTHY_TIMEOUT_S = 180


@dataclass
class Stack:
    """A running Compose project: the emulator service and the envapi."""

    folder: Path
    environ: dict[str, str]
    url: str
    token: str
    tensorboard_url: str

    def compose(
        self,
        *args: str,
        timeout: float = 600,
        check: bool = True,
        settings: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``docker-compose ARGS`` (or ``docker compose``) in the project folder."""
        result = subprocess.run(
            [*compose_command(), *args],
            cwd=self.folder,
            env={**self.environ, **(settings or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"compose {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def container(self, service: str) -> str:
        """The id of a service's (first) container."""
        return self.compose("ps", "-q", service).stdout.split()[0]

    def logs_until(self, container: str, text: str, timeout_s: float = 120) -> str:
        """A container's output, once it holds ``text``."""
        deadline = time.monotonic() + timeout_s
        while True:
            logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
            output = logs.stdout + logs.stderr
            if text in output:
                return output
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in {container}'s output:\n{output[-3000:]}")
            time.sleep(0.5)

    def restart_count(self, service: str) -> int:
        """How many times Docker has restarted a service's container."""
        inspect = ["docker", "inspect", "-f", "{{.RestartCount}}", self.container(service)]
        return int(subprocess.run(inspect, capture_output=True, text=True, check=True).stdout)

    def wait_healthy(self, *services: str, timeout_s: float = HEALTHY_TIMEOUT_S) -> None:
        """Until Docker's healthchecks pass for ``services`` (default: all started)."""
        deadline = time.monotonic() + timeout_s
        names = services or ("emulator", "envapi")
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            for name in names:
                # A restarting container keeps its last health until it runs again.
                inspect = ["docker", "inspect", "-f", "{{.State.Status}} {{.State.Health.Status}}"]
                result = subprocess.run(
                    [*inspect, self.container(name)], capture_output=True, text=True
                )
                states[name] = result.stdout.strip() or result.stderr.strip()
            if all(state == "running healthy" for state in states.values()):
                return
            time.sleep(1)
        logs = self.compose("logs", "--tail", "40", check=False)
        raise AssertionError(f"not healthy after {timeout_s} s: {states}\n{logs.stdout}")


def compose_command() -> list[str]:
    """Compose v1 (``docker-compose``) where installed, else Compose v2 (``docker compose``)."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return ["docker", "compose"]


def _missing_engine() -> str | None:
    """Why the stack cannot run here, or None."""
    if shutil.which("docker") is None:
        return "no docker command (scripts/docker-engine.sh installs and starts an engine)"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no Docker engine answers (scripts/docker-engine.sh starts one)"
    if subprocess.run([*compose_command(), "version"], capture_output=True).returncode != 0:
        return "neither docker-compose nor docker compose is installed"
    return None


def _copy_checkout(folder: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (entry.decode() for entry in listed)):
        source = ROOT / name
        if source.is_file():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _add_build_inputs(folder: Path) -> None:
    """This machine's CA bundle (its network may intercept TLS) and its PyTorch wheel."""
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if bundle.exists():
        shutil.copy(bundle, folder / "docker" / "extra-ca" / "host.crt")
    wheels = folder / "docker" / "wheels"
    download = ["download", "--quiet", "--no-deps", "--dest", str(wheels)]
    got = subprocess.run(
        [sys.executable, "-m", "pip", *download, f"torch=={torch_version()}"], timeout=900
    )
    if got.returncode != 0:
        warnings.warn(
            f"no wheel of torch {torch_version()} to build the agent image with: "
            "it takes PyTorch from PyPI",
            stacklevel=1,
        )


def _image_ids(names: list[str]) -> set[str]:
    ids = set()
    for name in names:
        inspect = ["docker", "image", "inspect", "-f", "{{.Id}}", name]
        found = subprocess.run(inspect, capture_output=True, text=True)
        if found.returncode == 0:
            ids.add(found.stdout.strip())
    return ids


def _remove_replaced(previous: set[str], current: set[str]) -> None:
    """The last run's images, which this build replaced: without this, each run leaves GBs."""
    for image in previous - current:
        # Fails, harmlessly, for an image a container still uses.
        subprocess.run(["docker", "image", "rm", image], capture_output=True)


def torch_version() -> str:
    """The PyTorch set up here (often a CPU-only build from a local wheel): the agent image's."""
    import torch

    return str(torch.__version__)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    missing = _missing_engine()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Compose tests: {missing}")
        pytest.skip(missing)
    folder = tmp_path_factory.mktemp("compose") / "netgym"
    _copy_checkout(folder)
    _add_build_inputs(folder)
    (folder / "runs").mkdir(exist_ok=True)
    uid, gid = (CONTAINER_UID, CONTAINER_UID) if os.getuid() == 0 else (os.getuid(), os.getgid())
    if os.getuid() == 0:
        for writable in (folder / "games", folder / "runs"):
            for path in [writable, *writable.rglob("*")]:
                os.chown(path, CONTAINER_UID, CONTAINER_UID)
    token = uuid.uuid4().hex
    # The caller's own Compose and netgym settings must not reach the test stack.
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("NETGYM_", "COMPOSE_"))
    }
    environ = {
        **inherited,
        "COMPOSE_PROJECT_NAME": f"netgymtest{uuid.uuid4().hex[:12]}",
        "NETGYM_IMAGE_PREFIX": "netgymtest",  # leaves the user's netgym-* images alone
        "NETGYM_TORCH_VERSION": torch_version().split("+")[0],
        "NETGYM_TOKEN": token,
        "NETGYM_UID": str(uid),
        "NETGYM_GID": str(gid),
    }
    stack = Stack(folder, environ, "", token, "")
    try:
        services = ("emulator", "envapi", "agent-cpu", "tensorboard")
        images = [f"{environ['NETGYM_IMAGE_PREFIX']}-{service}" for service in services]
        previous = _image_ids(images)
        stack.compose("build", *services, timeout=BUILD_TIMEOUT_S)
        _remove_replaced(previous, _image_ids(images))
        # Picked after the build, which can take minutes: free when the stack starts.
        port, data_port, tensorboard_port = free_ports(3)
        environ["NETGYM_PORT"] = str(port)
        environ["NETGYM_DATA_PORT"] = str(data_port)
        environ["NETGYM_TENSORBOARD_PORT"] = str(tensorboard_port)
        stack.url = f"http://127.0.0.1:{port}"
        stack.tensorboard_url = f"http://127.0.0.1:{tensorboard_port}"
        stack.compose("up", "-d", "emulator", "envapi", "tensorboard")
        stack.wait_healthy()
        yield stack
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False)
