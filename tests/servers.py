"""Start a real envapi process for tests, on free ports, and stop it cleanly."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKEN = "test-token"


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports, below the kernel's range for ephemeral ports.

    The kernel never gives a port below that range to a socket bound to port 0 or
    to an outgoing connection, so nothing else of the tests (an FCEUX bridge, a
    client) can take one of these between its pick here and a service's bind.
    """
    low, high = _unassigned_ports()
    picker = random.Random()
    ports: list[int] = []
    while len(ports) < count:
        port = picker.randrange(low, high)
        if port in ports:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue  # taken, or in TIME_WAIT
        ports.append(port)
    return ports


def _unassigned_ports() -> tuple[int, int]:
    """A range of ports that the kernel does not hand out itself (but for a machine
    whose ephemeral range starts below 2048)."""
    try:
        first_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = 32768  # Linux's default
    if first_ephemeral < 2048:  # no room below it: ports it may hand out too
        return 49152, 65536
    return max(1024, first_ephemeral - 10000), first_ephemeral


def free_port() -> int:
    return free_ports(1)[0]


@dataclass
class EnvApi:
    url: str
    data_port: int
    token: str | None
    process: subprocess.Popen[bytes]
    log: Path
    environ: dict[str, str] = field(default_factory=dict, repr=False)  # to restart it

    def live_sessions(self) -> list[dict[str, Any]]:
        """The live sessions' descriptions (GET /v1/sessions)."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        request = urllib.request.Request(f"{self.url}/v1/sessions", headers=headers)
        with urllib.request.urlopen(request, timeout=60) as reply:
            return list(json.load(reply)["sessions"])

    def live_session_ids(self) -> set[str]:
        return {session["session_id"] for session in self.live_sessions()}


def wait_for(condition: Callable[[], object], timeout_s: float = 10.0, what: str = "") -> None:
    """Until ``condition()`` is true; fail after ``timeout_s`` (saying ``what`` did not come)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what or f"timed out after {timeout_s:g} s"
        time.sleep(0.05)


def children(pid: int) -> list[int]:
    """Direct children of a process, from /proc (none once it has exited)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:  # it exited while we looked
        return []
    found = []
    for task in tasks:
        with suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def descendants(pid: int) -> list[int]:
    result = []
    for child in children(pid):
        result += [child, *descendants(child)]
    return result


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_service(
    module: str, port: int, env: dict[str, str], log: Path, log_level: str = "warning"
) -> subprocess.Popen[bytes]:
    """Start ``python -m MODULE`` and wait until its /v1/health answers 200."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--log-level", log_level],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=5):
                return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"{module} did not start:\n{log.read_text()}") from None
            time.sleep(0.1)


def stop_service(process: subprocess.Popen[bytes]) -> None:
    """SIGINT the service; afterwards no process it started may be left."""
    spawned = descendants(process.pid)
    process.send_signal(signal.SIGINT)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    assert_gone(spawned, f"{process.args!r} left processes behind")


def assert_gone(pids: list[int], problem: str) -> None:
    """Wait up to 10 s for ``pids`` to exit; fail with ``problem`` if any is left."""
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [p for p in pids if alive(p)]
    assert not left, f"{problem}: {left}"


@contextmanager
def run_envapi(
    tmp_path: Path, token: str | None = TOKEN, log_level: str = "warning", **settings: str
) -> Iterator[EnvApi]:
    """A live ``netgym-envapi`` process; every process it started is gone afterwards."""
    port, data_port = free_ports(2)
    env = {**os.environ, "NETGYM_PORT": str(port), "NETGYM_DATA_PORT": str(data_port)}
    env.pop("NETGYM_TOKEN", None)
    env["NETGYM_ENV_MODULES"] = "tests.fault_envs"
    if token is not None:
        env["NETGYM_TOKEN"] = token
    env.update({f"NETGYM_{k.upper()}": v for k, v in settings.items()})
    log = tmp_path / f"envapi-{port}.log"
    process = start_service("netgym_envapi", port, env, log, log_level)
    server = EnvApi(f"http://127.0.0.1:{port}", data_port, token, process, log, env)
    try:
        yield server
    finally:
        stop_service(server.process)  # the one running now, if restart_envapi replaced it


def kill_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a service and every process it started, as a crash or an OOM kill would."""
    spawned = descendants(process.pid)
    process.kill()
    for pid in spawned:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()
    assert_gone(spawned, "SIGKILL left processes behind")


def restart_envapi(server: EnvApi) -> None:
    """Start ``server``'s envapi again on the same ports and settings (after ``kill_tree``).

    ``server.process`` and ``server.log`` then name the new process; ``run_envapi``
    stops that one at its end.
    """
    assert server.process.poll() is not None, "kill the envapi before restarting it"
    port = int(server.environ["NETGYM_PORT"])
    log = server.log.with_name(f"envapi-{port}-{time.monotonic_ns()}.log")
    server.process = start_service("netgym_envapi", port, server.environ, log)
    server.log = log


@contextmanager
def run_emulator(
    tmp_path: Path,
    games_dir: Path,
    port: int | None = None,
    log_level: str = "warning",
    **settings: str,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A live ``netgym-emulator`` serving ``games_dir`` (on ``port``, else a free one);
    no FCEUX or Xvfb left afterwards.

    ``settings`` become ``NETGYM_EMULATOR_<NAME>`` variables.
    """
    port = port or free_port()
    env = {
        **os.environ,
        "NETGYM_EMULATOR_PORT": str(port),
        "NETGYM_EMULATOR_GAMES_DIR": str(games_dir),
    }
    env.update({f"NETGYM_EMULATOR_{k.upper()}": v for k, v in settings.items()})
    log = tmp_path / f"emulator-{port}.log"
    process = start_service("netgym_emulator", port, env, log, log_level)
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        stop_service(process)
