"""A session as the envapi's main process knows it: its state, its end, and how the
REST API and the log show it."""

from __future__ import annotations

import asyncio
import enum
import logging
import multiprocessing
import socket
import time
from dataclasses import dataclass, field, replace
from typing import Any

from netgym_envapi.sessions.config import SessionConfig
from netgym_envapi.sessions.deadline import StepDeadline
from netgym_envapi.sessions.limits import shortened

log = logging.getLogger("netgym.envapi.sessions")


class SessionState(enum.StrEnum):
    """Where a session is in its life."""

    STARTING = "starting"
    READY = "ready"
    ATTACHED = "attached"
    ENDED = "ended"


def read_its_error(future: asyncio.Future[Any]) -> None:
    """Read a finished future's error, so that asyncio does not log it as lost when
    no caller waits for it any more."""
    if not future.cancelled():
        future.exception()


@dataclass
class SessionRecord:
    """One session as the main process knows it."""

    config: SessionConfig
    process: multiprocessing.process.BaseProcess
    control: socket.socket
    pid: int | None = None
    exitcode: int | None = None
    running: bool = True  # False from the moment its process is seen to exit
    killed: bool = False  # SIGKILLed as hung: it still counts until it exits
    deadline: StepDeadline | None = None
    created_at: float = field(default_factory=time.time)
    state: SessionState = SessionState.STARTING
    observation_space: dict[str, Any] | None = None
    action_space: dict[str, Any] | None = None
    episode: dict[str, Any] = field(default_factory=dict)  # max_episode_steps, reward_threshold
    action_meanings: list[str] | None = None  # what each action does, where the env says
    env_revision: str | None = None  # an NES game's version (its files' digest)
    end_reason: str | None = None
    end_error: dict[str, Any] | None = None
    ready: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    watcher: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        # The end of a session whose making timed out, say, that no caller waits for.
        self.ready.add_done_callback(read_its_error)

    @property
    def session_id(self) -> str:
        return self.config.session_id

    def keep_only_its_end(self) -> None:
        """Drop what only a live session needs: ended records are kept by the
        thousand, and a request's kwargs or an env's spaces may take megabytes."""
        self.config = replace(self.config, env_kwargs={}, wrappers=[])
        self.observation_space = self.action_space = self.action_meanings = None
        if self.end_reason is not None:
            self.end_reason = shortened(self.end_reason)
        if self.end_error is not None and isinstance(self.end_error.get("message"), str):
            self.end_error = {**self.end_error, "message": shortened(self.end_error["message"])}

    def public(self) -> dict[str, Any]:
        """The session as the REST API shows it."""
        return {
            "session_id": self.session_id,
            "env_id": self.config.env_id,
            "num_envs": self.config.num_envs,
            "autoreset_mode": self.config.autoreset_mode.value,
            "state": self.state.value,
            "created_at": self.created_at,
            "pid": self.pid,
            "client": self.config.client,
            "end_reason": self.end_reason,
        }


def log_end(record: SessionRecord) -> None:
    """One line for the operator: which session ended, and why (as its client is told)."""
    reason = record.end_reason or "ended"
    code = (record.end_error or {}).get("code")
    log.log(
        logging.WARNING if code in ("worker_crashed", "worker_timeout") else logging.INFO,
        "%s%s %s",
        named(record),
        f" of {record.config.client}" if record.config.client else "",
        reason if reason.startswith("was ") else f"ended: {reason}",
    )


def named(record: SessionRecord) -> str:
    """A session as the log names it: 'session 1a2b... (CartPole-v1, 2 envs)'."""
    config = record.config
    envs = "env" if config.num_envs == 1 else "envs"
    return f"session {record.session_id} ({config.env_id}, {config.num_envs} {envs})"
