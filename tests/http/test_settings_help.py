"""The services' settings as a user meets them: a misspelled variable is said, not ignored."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic_settings import BaseSettings

from netgym_emulator.settings import EmulatorSettings
from netgym_envapi.settings import Settings
from netgym_http.settings_help import misspelled_settings

# Variables that netgym's programs set for one another, or for themselves.
OTHERS = [
    *(f"NETGYM_{name.upper()}" for name in Settings.model_fields),
    *(f"NETGYM_EMULATOR_{name.upper()}" for name in EmulatorSettings.model_fields),
    "NETGYM_URL",
    "NETGYM_AGENT_CONFIG",
    "NETGYM_REQUIRE_GPU",
    "NETGYM_CONTINUE_WITH",
    "NETGYM_TORCH_VERSION",
    "NETGYM_IMAGE_PREFIX",
    "NETGYM_PUBLISH_ADDRESS",
    "NETGYM_TENSORBOARD_PORT",
    "NETGYM_UID",
    "NETGYM_GID",
]


@pytest.mark.parametrize(
    ("settings", "variable", "meant"),
    [
        (Settings, "NETGYM_STEP_TIMOUT_S", "NETGYM_STEP_TIMEOUT_S"),
        (Settings, "NETGYM_MAX_SESION", "NETGYM_MAX_SESSIONS"),
        (Settings, "NETGYM_EMULATOR_UR", "NETGYM_EMULATOR_URL"),
        (EmulatorSettings, "NETGYM_EMULATOR_GAME_DIR", "NETGYM_EMULATOR_GAMES_DIR"),
        (EmulatorSettings, "NETGYM_EMULATOR_MAX_INSTANCE", "NETGYM_EMULATOR_MAX_INSTANCES"),
    ],
)
def test_a_variable_close_to_a_setting_is_said_with_the_setting_meant(
    settings: type[BaseSettings], variable: str, meant: str
) -> None:
    assert misspelled_settings(settings, {variable: "5"}) == [
        f"{variable} is set but is no setting, so it changes nothing: did you mean {meant}? "
        "(--help lists the settings)"
    ]


@pytest.mark.parametrize("settings", [Settings, EmulatorSettings])
def test_the_variables_of_netgyms_other_programs_are_left_alone(
    settings: type[BaseSettings],
) -> None:
    assert misspelled_settings(settings, dict.fromkeys(OTHERS, "1")) == []


def test_the_envapi_says_a_misspelled_setting_as_it_starts() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETGYM_")}
    result = subprocess.run(
        [sys.executable, "-m", "netgym_envapi", "--host", "0.0.0.0"],  # refused: it stops there
        env={**env, "NETGYM_STEP_TIMOUT_S": "5"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "NETGYM_STEP_TIMOUT_S is set but is no setting" in result.stderr, result.stderr
    assert "did you mean NETGYM_STEP_TIMEOUT_S?" in result.stderr
