"""The errors the training agent raises; each says what went wrong and what to do.

They derive from ``netgym.errors.NetgymError`` so that one ``except`` catches
both the client's errors (server gone, session ended) and the agent's.
"""

from __future__ import annotations

import difflib
import errno
import os
from collections.abc import Iterable
from typing import ClassVar

from netgym.errors import NetgymError


class AgentError(NetgymError):
    """Base class of the training agent's errors."""

    code: ClassVar[str] = "agent"


class ConfigError(AgentError):
    """A training config is invalid: the message names the key and the bad value."""

    code = "agent_config"


class DeviceError(AgentError):
    """The device the config asks for (a GPU) is not visible to PyTorch."""

    code = "agent_device"


class CheckpointError(AgentError):
    """A checkpoint is missing, incomplete or does not match its manifest."""

    code = "agent_checkpoint"


class EnvChangedError(AgentError):
    """The env served now is not the one the run's model was trained on: other spaces,
    or another revision of its NES game (its folder was edited)."""

    code = "agent_env_changed"


class TrainingError(AgentError):
    """Stable-baselines3 or PyTorch failed while training (not the server, not the run
    folder): a hyperparameter it refuses only at its first update, or out of memory."""

    code = "agent_training"


class RunDirError(AgentError):
    """The run folder cannot be used as asked (exists without --resume, and so on)."""

    code = "agent_run_dir"


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known``, or an empty string."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def explain(exc: OSError) -> str:
    """An OS error in words, with what to do when it is a question of permissions."""
    text = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM):
        text += (
            f" (this runs as user {os.getuid()}; in Compose, set NETGYM_UID and NETGYM_GID "
            "to the owner of runs/)"
        )
    return text
