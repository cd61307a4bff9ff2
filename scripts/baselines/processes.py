"""Start and stop a baseline server as a subprocess (shared by both baselines)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]


def poll_until_ready(
    answers: Callable[[], bool], what: str, timeout: float, errors: tuple[type[Exception], ...]
) -> None:
    """Call ``answers`` every 50 ms until it returns True.

    Raises:
        TimeoutError: naming ``what``, when it has not answered within ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if answers():
                return
        except errors:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready in {timeout} s")
        time.sleep(0.05)


def launch(
    module: str, port: int, wait_ready: Callable[[int, float], None], timeout: float = 30.0
) -> subprocess.Popen[bytes]:
    """Run ``python -m MODULE --port PORT`` from the repo root and wait until it answers.

    Returns:
        The server process; end it with :func:`stop`.
    """
    proc = subprocess.Popen([sys.executable, "-m", module, "--port", str(port)], cwd=REPO_ROOT)
    try:
        wait_ready(port, timeout)
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM a server, then SIGKILL it if it lingers past ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
