"""What a session process needs to know, fixed when it starts."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from netgym_envapi.wrappers import WrapperSpec


class AutoresetMode(enum.StrEnum):
    """Gymnasium's vector autoreset modes, as they are named on the wire."""

    NEXT_STEP = "next_step"
    SAME_STEP = "same_step"
    DISABLED = "disabled"


@dataclass(frozen=True)
class SessionConfig:
    """The session's env, its size and its limits."""

    session_id: str
    env_id: str
    num_envs: int
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    wrappers: list[WrapperSpec] = field(default_factory=list)
    autoreset_mode: AutoresetMode = AutoresetMode.SAME_STEP
    workers: int = 1
    idle_timeout_s: float = 300.0
    attach_timeout_s: float = 30.0
    step_timeout_s: float = 60.0
    make_timeout_s: float = 120.0
    max_message_bytes: int = 64 * 1024 * 1024
    env_modules: list[str] = field(default_factory=list)
    emulator_url: str | None = None
    # Where the session offers its results as a file to a client on this host.
    shared_memory_dir: str | None = None
    log_level: int = 30  # the envapi's (logging.WARNING by default)
    client: str | None = None  # who asked for it: the address of its POST, for the log
