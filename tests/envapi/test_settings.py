"""Access settings: no listening beyond loopback without a token unless told so."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from netgym_envapi.settings import Settings
from netgym_http.guard import InsecureBindError


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_needs_no_token(host: str) -> None:
    Settings(host=host).check_bind()


def test_beyond_loopback_needs_a_token_or_explicit_consent() -> None:
    with pytest.raises(InsecureBindError, match="NETGYM_TOKEN"):
        Settings(host="0.0.0.0").check_bind()
    Settings(host="0.0.0.0", token="secret").check_bind()
    Settings(host="0.0.0.0", allow_unauthenticated_remote_access=True).check_bind()


@pytest.mark.parametrize(
    ("module", "prefix"),
    [("netgym_envapi", "NETGYM_"), ("netgym_emulator", "NETGYM_EMULATOR_")],
    ids=["envapi", "emulator"],
)
def test_command_line_refuses_and_says_what_to_do(module: str, prefix: str) -> None:
    """Anyone who reached the emulator service's port could start FCEUX after FCEUX
    and drive them, as anyone could the envapi's envs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETGYM_")}
    result = subprocess.run(
        [sys.executable, "-m", module, "--host", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "refusing to listen on 0.0.0.0 without a token" in result.stderr
    assert f"set {prefix}TOKEN, or bind 127.0.0.1" in result.stderr
    assert f"{prefix}ALLOW_UNAUTHENTICATED_REMOTE_ACCESS" in result.stderr


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"], ids=["empty", "spaces", "whitespace"])
def test_blank_token_is_no_token(blank: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(token=blank).token is None
    monkeypatch.setenv("NETGYM_TOKEN", blank)
    assert Settings().token is None
    with pytest.raises(InsecureBindError, match="without a token"):
        Settings(host="0.0.0.0").check_bind()


@pytest.mark.parametrize(
    ("module", "variable", "flag", "said"),
    [
        (
            "netgym_envapi",
            "NETGYM_STEP_TIMEOUT_S=abc",
            [],
            "netgym-envapi: NETGYM_STEP_TIMEOUT_S='abc': Input should be a valid number, unable "
            "to parse string as a number",
        ),
        (
            "netgym_envapi",
            "NETGYM_DATA_PORT=70001",
            ["--port", "70000"],
            "netgym-envapi: --port=70000: Input should be less than or equal to 65535\n"
            "netgym-envapi: NETGYM_DATA_PORT='70001': Input should be less than or equal to 65535",
        ),
        (
            "netgym_emulator",
            "NETGYM_EMULATOR_MAX_INSTANCES=0",
            [],
            "netgym-emulator: NETGYM_EMULATOR_MAX_INSTANCES='0': Input should be greater than or "
            "equal to 1",
        ),
    ],
    ids=["not-a-number", "port-out-of-range", "emulator-limit"],
)
def test_a_setting_that_does_not_fit_is_one_line_naming_its_variable(
    module: str, variable: str, flag: list[str], said: str
) -> None:
    """Not pydantic's traceback, naming the field; a port past 65535 was wrapped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETGYM_")}
    name, value = variable.split("=")
    result = subprocess.run(
        [sys.executable, "-m", module, *flag],
        env={**env, name: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == said


def test_a_data_port_in_use_is_named() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETGYM_")}
    with socket.socket() as taken, socket.socket() as free:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        free.bind(("127.0.0.1", 0))
        port, rest_port = taken.getsockname()[1], free.getsockname()[1]
        free.close()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "netgym_envapi",
                "--port",
                str(rest_port),
                "--data-port",
                str(port),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert f"cannot listen on the data port 127.0.0.1:{port} (Address already in use)" in (
        result.stderr
    )
