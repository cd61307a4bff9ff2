"""Every setting of the emulator service, from ``NETGYM_EMULATOR_*`` variables."""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from netgym_http.guard import blank_is_none, check_bind


class EmulatorSettings(BaseSettings):
    """The emulator service's configuration."""

    model_config = SettingsConfigDict(env_prefix="NETGYM_EMULATOR_")

    host: str = Field("127.0.0.1", description="address of the REST API")
    port: int = Field(8002, ge=1, le=65535, description="REST API port")
    bridge_host: str = Field("127.0.0.1", description="address the instances' bridges bind")
    games_dir: Path = Field(Path("games"), description="the folder of game folders")
    fceux: str = Field(
        default_factory=lambda: shutil.which("fceux") or "/usr/games/fceux",
        description="the FCEUX program (Debian puts it in /usr/games)",
    )
    max_instances: int = Field(
        16, ge=1, description="FCEUX instances at once (those still starting count)"
    )
    start_timeout_s: float = Field(30.0, gt=0, description="limit on an instance's start")
    attach_timeout_s: float = Field(30.0, gt=0, description="an unclaimed instance exits then")
    idle_timeout_s: float = Field(
        600.0,
        ge=0,
        description="an instance whose client sends nothing for this long exits (0: never)",
    )
    script_memory_mb: float = Field(
        256.0,
        gt=0,
        description=(
            "the Lua memory a game script may hold in an instance; a call of it that holds "
            "more is an error"
        ),
    )
    token: SecretStr | None = Field(
        None,
        description=(
            "the token the envapi sends to start, list and stop instances (in Compose, "
            "NETGYM_TOKEN's); the games' list and health need none"
        ),
    )
    allow_unauthenticated_remote_access: bool = Field(
        False, description="listen beyond loopback without a token (anyone can start instances)"
    )
    request_timeout_s: float = Field(
        30.0, gt=0, description="close a REST connection whose request has not all come by then"
    )
    work_dir: Path | None = Field(
        None, description="per-instance FCEUX homes (default: a temp dir)"
    )
    screen_dir: Path | None = Field(
        None,
        description=(
            "where instances write screens for clients on this host (default: a new folder "
            "in /dev/shm); in Compose, a tmpfs volume mounted at the same path in the envapi"
        ),
    )

    _blank_token_is_none = field_validator("token", mode="before")(blank_is_none)

    def check_bind(self) -> None:
        """Refuse to listen beyond loopback without a token unless told so explicitly.

        Raises:
            InsecureBindError: naming the setting that allows it.
        """
        check_bind(
            self.host, self.token, self.allow_unauthenticated_remote_access, "NETGYM_EMULATOR_"
        )

    @field_validator("games_dir")
    @classmethod
    def _absolute(cls, games_dir: Path) -> Path:
        """Every problem of a game names its files by absolute paths, as a user can open them."""
        return games_dir.absolute()
