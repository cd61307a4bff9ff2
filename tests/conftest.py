from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import EnvApi, run_envapi


@pytest.fixture(scope="session", autouse=True)
def sb3_log_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where SB3 logs a ``learn()`` given no logger of ours: pytest's temporary folder.

    Otherwise SB3 leaves a ``/tmp/SB3-<date-time>`` folder behind for each one.
    """
    folder = tmp_path_factory.mktemp("sb3-logs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SB3_LOGDIR", str(folder))
        yield folder


@pytest.fixture(scope="session")
def envapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvApi]:
    """One envapi for the whole run, with a token."""
    with run_envapi(tmp_path_factory.mktemp("envapi")) as server:
        yield server


@pytest.fixture(params=[True, False], ids=["shared-memory", "socket"])
def remote_kwargs(envapi: EnvApi, request: pytest.FixtureRequest) -> dict[str, Any]:
    """How to reach the envapi; the contract holds with results through shared
    memory (a client on the envapi's host) and through the socket (any other)."""
    return {"url": envapi.url, "token": envapi.token, "shared_memory": request.param}


@pytest.fixture
def tmp_envapi(tmp_path: Path) -> Iterator[EnvApi]:
    """A private envapi with a short step timeout and low limits, for tests that break things.

    Its idle and attach timeouts are long: a bystander session idle while another
    one's hung step times out must not end (the tests of those timeouts start an
    envapi of their own).
    """
    with run_envapi(
        tmp_path,
        idle_timeout_s="60",
        attach_timeout_s="60",
        step_timeout_s="2",
        max_sessions="3",
        max_envs_per_session="16",
        max_message_bytes="65536",
    ) as server:
        yield server
