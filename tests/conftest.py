from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import EnvApi, run_envapi


@pytest.fixture(scope="session")
def envapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvApi]:
    """One envapi for the whole run, with a token."""
    with run_envapi(tmp_path_factory.mktemp("envapi")) as server:
        yield server


@pytest.fixture
def remote_kwargs(envapi: EnvApi) -> dict[str, str | None]:
    return {"url": envapi.url, "token": envapi.token}


@pytest.fixture
def tmp_envapi(tmp_path: Path) -> Iterator[EnvApi]:
    """A private envapi with short timeouts, for tests that break things."""
    with run_envapi(
        tmp_path,
        idle_timeout_s="4",
        attach_timeout_s="3",
        step_timeout_s="2",
        max_sessions="3",
        max_envs_per_session="16",
        max_message_bytes="65536",
    ) as server:
        yield server
