"""Server-side wrappers a session may ask for, by name.

Preprocessing on the server means only small frames cross the network; the
unwrapped env (``env.unwrapped``) keeps the raw frames for recording.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import wrappers

from netgym.errors import InvalidRequestError, UnsupportedSpaceError
from netgym.protocol.spaces import BatchLayout

# One env's observation out of a wrapper, at most: checked before the wrapper is
# made, as Gymnasium's wrappers allocate their space's bounds (and frames) whole.
MAX_OBSERVATION_BYTES = 64 << 20


@dataclass(frozen=True)
class WrapperSpec:
    """A wrapper by name with its keyword arguments, applied in list order."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def _atari(env: gym.Env[Any, Any], **kwargs: Any) -> gym.Env[Any, Any]:
    options = {
        "noop_max": 30,
        "frame_skip": 4,
        "screen_size": 84,
        "terminal_on_life_loss": False,
        "grayscale_obs": True,
        "scale_obs": False,
        **kwargs,
    }
    size, gray, scaled = options["screen_size"], options["grayscale_obs"], options["scale_obs"]
    sides = [size, size] if isinstance(size, int) else size
    # Else Gymnasium says what is wrong with it.
    if (
        isinstance(sides, list | tuple)
        and len(sides) == 2
        and all(isinstance(n, int) for n in sides)
    ):
        pixels = math.prod(sides)
        _refuse_observations_over(pixels * (1 if gray else 3) * (4 if scaled else 1), "atari")
    return wrappers.AtariPreprocessing(env, **options)


def _frame_stack(env: gym.Env[Any, Any], stack_size: int = 4) -> gym.Env[Any, Any]:
    if isinstance(stack_size, int):
        with contextlib.suppress(UnsupportedSpaceError):  # the session refuses it anyway
            nbytes = BatchLayout(env.observation_space, 1, "observation").nbytes
            _refuse_observations_over(stack_size * nbytes, "frame_stack")
    return wrappers.FrameStackObservation(env, stack_size=stack_size)


def _refuse_observations_over(nbytes: int, wrapper: str) -> None:
    if nbytes > MAX_OBSERVATION_BYTES:
        size = f"{nbytes >> 20:,} MiB" if nbytes < 1 << 60 else "over 2**60 bytes"
        raise InvalidRequestError(
            f"wrapper {wrapper!r} would make each observation {size}, over "
            f"the {MAX_OBSERVATION_BYTES >> 20} MiB the envapi serves: give it smaller "
            "arguments",
            details={"wrapper": wrapper, "observation_bytes": nbytes},
        )


def _clip_reward(env: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
    return wrappers.TransformReward(env, lambda r: float(np.sign(float(r))))


def _time_limit(env: gym.Env[Any, Any], max_episode_steps: int) -> gym.Env[Any, Any]:
    return wrappers.TimeLimit(env, max_episode_steps=max_episode_steps)


def _episode_statistics(env: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
    return wrappers.RecordEpisodeStatistics(env)


_WRAPPERS: dict[str, tuple[Callable[..., gym.Env[Any, Any]], frozenset[str], str]] = {
    "atari": (
        _atari,
        frozenset(
            {
                "noop_max",
                "frame_skip",
                "screen_size",
                "terminal_on_life_loss",
                "grayscale_obs",
                "scale_obs",
            }
        ),
        "AtariPreprocessing: no-op starts, frame skip 4 with max-pooling, 84x84 gray",
    ),
    "frame_stack": (
        _frame_stack,
        frozenset({"stack_size"}),
        "stack the last stack_size observations (4 by default) on a new first axis",
    ),
    "clip_reward": (_clip_reward, frozenset(), "rewards become their sign: -1, 0 or 1"),
    "time_limit": (
        _time_limit,
        frozenset({"max_episode_steps"}),
        "truncate episodes at max_episode_steps steps (required)",
    ),
    "episode_statistics": (
        _episode_statistics,
        frozenset(),
        "info['episode'] = return, length, time at episode end",
    ),
}


def available_wrappers() -> dict[str, dict[str, Any]]:
    """Name, description and accepted keyword arguments of every wrapper."""
    return {
        name: {"description": doc, "kwargs": sorted(keys)}
        for name, (_, keys, doc) in _WRAPPERS.items()
    }


def parse_wrappers(raw: list[Any]) -> list[WrapperSpec]:
    """Wrapper specs from a request: names, or ``{"name": ..., "kwargs": {...}}``.

    Raises:
        InvalidRequestError: for an unknown name or keyword argument.
    """
    specs = []
    for item in raw:
        if isinstance(item, str):
            spec = WrapperSpec(item)
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            if extra := sorted(set(item) - {"name", "kwargs"}):
                raise InvalidRequestError(
                    f"wrapper {item['name']!r}: unknown key(s) {extra}; a wrapper is a name or "
                    "{'name': ..., 'kwargs': {...}}, e.g. "
                    "{'name': 'frame_stack', 'kwargs': {'stack_size': 4}}"
                )
            kwargs = item.get("kwargs") or {}
            if not isinstance(kwargs, dict):
                raise InvalidRequestError(f"wrapper {item['name']!r}: kwargs must be an object")
            spec = WrapperSpec(item["name"], dict(kwargs))
        else:
            raise InvalidRequestError(f"a wrapper is a name or {{'name', 'kwargs'}}, got {item!r}")
        if spec.name not in _WRAPPERS:
            raise InvalidRequestError(
                f"unknown wrapper {spec.name!r}; known: {', '.join(sorted(_WRAPPERS))}"
            )
        factory, taken, _ = _WRAPPERS[spec.name]
        unknown = set(spec.kwargs) - taken
        if unknown:
            raise InvalidRequestError(
                f"wrapper {spec.name!r} takes no {sorted(unknown)}; "
                f"it takes {sorted(taken) or 'no arguments'}"
            )
        if missing := [name for name in _required_kwargs(factory) if name not in spec.kwargs]:
            raise InvalidRequestError(
                f"wrapper {spec.name!r} needs kwargs {missing}, e.g. "
                f"{{'name': {spec.name!r}, 'kwargs': {{{missing[0]!r}: ...}}}}"
            )
        specs.append(spec)
    names = [spec.name for spec in specs]
    ataris = [i for i, name in enumerate(names) if name == "atari"]
    if ataris and "frame_stack" in names[: ataris[-1]]:
        raise InvalidRequestError(
            "wrapper 'atari' comes after 'frame_stack': it takes the game's own screen, so "
            "put it first: ['atari', 'frame_stack']"
        )
    return specs


@functools.cache
def _required_kwargs(factory: Callable[..., Any]) -> tuple[str, ...]:
    """The arguments a wrapper's factory needs past the env (those with no default)."""
    return tuple(
        name
        for name, parameter in list(inspect.signature(factory).parameters.items())[1:]
        if parameter.default is parameter.empty
        and parameter.kind is parameter.POSITIONAL_OR_KEYWORD
    )


def make_kwargs_for(specs: list[WrapperSpec]) -> dict[str, Any]:
    """Arguments ``gym.make`` needs for these wrappers (the atari one skips frames itself)."""
    return {"frameskip": 1} if any(s.name == "atari" for s in specs) else {}


def apply_wrappers(env: gym.Env[Any, Any], specs: list[WrapperSpec]) -> gym.Env[Any, Any]:
    """Wrap ``env`` in order.

    Raises:
        InvalidRequestError: when a wrapper rejects its arguments or the env.
    """
    for spec in specs:
        factory = _WRAPPERS[spec.name][0]
        try:
            env = factory(env, **spec.kwargs)
        except (TypeError, ValueError, gym.error.Error) as exc:
            raise InvalidRequestError(f"wrapper {spec.name!r} failed: {exc}") from exc
    return env
