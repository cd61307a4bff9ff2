"""What a caller gives a remote env (URL, token, seeds, timeouts, modes, kwargs),
checked before anything is sent, and put as it travels."""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode

from netgym.errors import InvalidRequestError, ProtocolError
from netgym.protocol.values import json_value

DEFAULT_URL = "http://127.0.0.1:8000"
_MIN_TIMEOUT_S, _MAX_TIMEOUT_S = 0.001, 1e6  # a socket's timeout; 1e6 s is 11 days

NO_RENDERING = (
    "render_mode: the envapi's envs run on a server with no screen and send observations, "
    "not renderings; leave render_mode out (the observations of Atari and NES games are "
    "their screens)"
)

NOT_RENDERED = (
    "a remote env does not render: the envapi's envs run on a server with no screen; "
    "the observations of Atari and NES games are their screens"
)

WIRE_MODES = {
    AutoresetMode.NEXT_STEP: "next_step",
    AutoresetMode.SAME_STEP: "same_step",
    AutoresetMode.DISABLED: "disabled",
}


def server_address(url: str | None, token: str | None) -> tuple[str, str | None]:
    """The envapi's URL and token: as given, else ``$NETGYM_URL`` and ``$NETGYM_TOKEN``."""
    token = token if token is not None else os.environ.get("NETGYM_TOKEN")
    if isinstance(token, str):  # read from a file, say: its line end is no part of it
        token = token.strip() or None
    url = url or os.environ.get("NETGYM_URL") or DEFAULT_URL
    if isinstance(url, str):  # as the token
        url = url.strip() or DEFAULT_URL
    return url, token


def autoreset_mode_of(value: AutoresetMode | str) -> AutoresetMode:
    """Gymnasium's mode, from itself, its value (``"SameStep"``) or the wire's name."""
    by_name = {name: mode for mode, name in WIRE_MODES.items()}
    if isinstance(value, str) and value in by_name:
        return by_name[value]
    try:
        return AutoresetMode(value)
    except ValueError:
        raise InvalidRequestError(
            f"autoreset_mode={value!r}: use gymnasium.vector.AutoresetMode, or one of "
            f"{', '.join(repr(name) for name in by_name)}"
        ) from None


def wire_seed(seed: Any) -> int | list[int | None] | None:
    """A reset seed as it travels: None, an int, or a list of ints and Nones.

    Raises:
        InvalidRequestError: for anything else, before anything is sent.
    """
    if isinstance(seed, np.ndarray):
        seed = seed.tolist()  # numpy ints become Python ints, a 0-d array one int
    if seed is None or is_seed(seed):
        return single_seed(seed)
    if (
        isinstance(seed, Sequence)
        and not isinstance(seed, str | bytes)
        and all(s is None or is_seed(s) for s in seed)
    ):
        return [single_seed(s) for s in seed]
    raise InvalidRequestError(
        f"seed must be None, an int 0 or more, or a sequence of such ints or None; got {seed!r}"
    )


def not_an_argument(given: dict[str, Any]) -> str:
    names = ", ".join(sorted(given))
    return (
        f"{names}: not an argument of netgym's envs. The env's own arguments go in "
        f"env_kwargs, which the server passes to gymnasium.make: env_kwargs={given!r}"
    )


def single_seed(seed: Any) -> int | None:
    """The seed of one env's reset: None or an int 0 or more, as a Python int.

    Raises:
        InvalidRequestError: for anything else, before anything is sent.
    """
    if seed is None or is_seed(seed):
        return None if seed is None else int(seed)
    raise InvalidRequestError(f"seed must be None or an int 0 or more; got {seed!r}")


def is_seed(value: Any) -> bool:
    return is_int(value) and value >= 0


def seconds(name: str, value: Any) -> float:
    """``value`` as a timeout a socket takes.

    Raises:
        InvalidRequestError: for anything else (0, a negative, NaN, None, a string).
    """
    if not (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool | np.bool_)
        and _MIN_TIMEOUT_S <= float(value) <= _MAX_TIMEOUT_S
    ):
        raise InvalidRequestError(
            f"{name}={value!r}: give a number of seconds from {_MIN_TIMEOUT_S:g} to "
            f"{_MAX_TIMEOUT_S:,.0f}"
        )
    return float(value)


def is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def as_json(name: str, value: Any) -> Any:
    """``env_kwargs`` or ``wrappers`` as the REST body carries them (a tuple stays one)."""
    try:
        return json_value(value)
    except ProtocolError as exc:
        raise InvalidRequestError(f"{name} cannot be sent: {exc.message}") from None
