"""Start a real envapi process for tests, on free ports, and stop it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

TOKEN = "test-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EnvApi:
    url: str
    data_port: int
    token: str | None
    process: subprocess.Popen[bytes]
    log: Path


def children(pid: int) -> list[int]:
    """Direct children of a process, from /proc."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
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


@contextmanager
def run_envapi(tmp_path: Path, token: str | None = TOKEN, **settings: str) -> Iterator[EnvApi]:
    """A live ``netgym-envapi`` process; every process it started is gone afterwards."""
    port, data_port = free_port(), free_port()
    env = {**os.environ, "NETGYM_PORT": str(port), "NETGYM_DATA_PORT": str(data_port)}
    env.pop("NETGYM_TOKEN", None)
    env["NETGYM_ENV_MODULES"] = "tests.fault_envs"
    if token is not None:
        env["NETGYM_TOKEN"] = token
    env.update({f"NETGYM_{k.upper()}": v for k, v in settings.items()})
    log = tmp_path / f"envapi-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "netgym_envapi", "--log-level", "warning"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/v1/health", timeout=5):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"envapi did not start:\n{log.read_text()}") from None
            time.sleep(0.1)
    try:
        yield EnvApi(url, data_port, token, process, log)
    finally:
        spawned = descendants(process.pid)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        deadline = time.monotonic() + 10
        while any(alive(p) for p in spawned) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [p for p in spawned if alive(p)]
        assert not left, f"envapi left processes behind: {left}"
