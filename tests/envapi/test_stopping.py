"""The envapi stopped by a signal runs its exit handlers: nothing of it is left in /tmp."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

import netgym
from tests.servers import free_ports, start_service


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_envapi_leaves_no_temporary_folder(tmp_path: Path, stop: signal.Signals) -> None:
    # uvicorn raises the signal again as it ends: SIGTERM's own handling skipped the
    # exit handlers, and multiprocessing's folder (its forkserver's socket) stayed.
    temp = tmp_path / "tmp"
    temp.mkdir()
    port, data_port = free_ports(2)
    env = {**os.environ, "NETGYM_PORT": str(port), "NETGYM_DATA_PORT": str(data_port)}
    env.pop("NETGYM_TOKEN", None)
    env["TMPDIR"] = str(temp)
    process = start_service("netgym_envapi", port, env, tmp_path / "envapi.log")
    try:
        with netgym.make("CartPole-v1", url=f"http://127.0.0.1:{port}") as remote:
            remote.reset(seed=0)
        assert any(temp.iterdir())  # the forkserver's
        process.send_signal(stop)
        code = process.wait(30)
        assert code == (143 if stop == signal.SIGTERM else 0)  # 143: as a shell reports it
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not list(temp.iterdir())
    assert "Traceback" not in (tmp_path / "envapi.log").read_text()
