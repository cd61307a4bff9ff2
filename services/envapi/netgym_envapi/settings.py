"""Every setting of the envapi, read once from ``NETGYM_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from netgym_http.guard import blank_is_none, check_bind


class Settings(BaseSettings):
    """The envapi's configuration; each field is ``NETGYM_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="NETGYM_")

    host: str = Field("127.0.0.1", description="address the REST API and the data port bind")
    port: int = Field(8000, ge=1, le=65535, description="REST API port")
    data_port: int = Field(
        8001, ge=0, le=65535, description="binary stepping port; 0 picks a free one"
    )
    public_data_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="data port as clients reach it, when a proxy or Docker maps it",
    )
    token: SecretStr | None = Field(None, description="access token every request must carry")
    allow_unauthenticated_remote_access: bool = Field(
        False, description="listen beyond loopback without a token (anyone can run envs)"
    )
    env_modules: str = Field(
        "", description="comma-separated modules whose Gymnasium envs are served too"
    )
    emulator_url: str | None = Field(
        None,
        description="the emulator service whose games are served too, e.g. http://emulator:8002",
    )
    shared_memory: bool = Field(
        True,
        description="offer clients on this host step results through shared memory",
    )
    shared_memory_dir: Path | None = Field(
        None,
        description=(
            "where sessions put their shared-memory files (default: a new folder in "
            "/dev/shm); in Compose, a tmpfs volume mounted at the same path in the agent"
        ),
    )
    max_sessions: int = Field(32, ge=1, description="sessions at once, those being made too")
    max_envs_per_session: int = Field(64, ge=1, description="num_envs of one session, at most")
    max_message_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="the largest frame a client may send"
    )
    workers_per_session: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="a session's envs step in at most this many slices: the session "
        "process steps one, a worker process each of the others",
    )
    idle_timeout_s: float = Field(300.0, gt=0, description="end a session silent this long")
    attach_timeout_s: float = Field(30.0, gt=0, description="end a session not attached by then")
    request_timeout_s: float = Field(
        30.0, gt=0, description="close a REST connection whose request has not all come by then"
    )
    make_timeout_s: float = Field(120.0, gt=0, description="limit on making a session's envs")
    step_timeout_s: float = Field(60.0, gt=0, description="limit on one reset or step")
    ended_session_memory: int = Field(
        1000, ge=0, description="how many ended sessions keep their end reason"
    )

    _blank_token_is_none = field_validator("token", mode="before")(blank_is_none)

    @property
    def env_module_list(self) -> list[str]:
        """``env_modules`` as a list."""
        return [m.strip() for m in self.env_modules.split(",") if m.strip()]

    def check_bind(self) -> None:
        """Refuse to listen beyond loopback without a token unless told so explicitly.

        Raises:
            InsecureBindError: naming the setting that allows it.
        """
        check_bind(self.host, self.token, self.allow_unauthenticated_remote_access, "NETGYM_")
