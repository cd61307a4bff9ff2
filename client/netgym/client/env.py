"""``RemoteEnv``: a single Gymnasium ``Env`` served by an envapi session of one env."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Discrete
from gymnasium.vector import AutoresetMode

from netgym.client.arguments import NO_RENDERING, NOT_RENDERED, single_seed
from netgym.client.vector import RemoteVectorEnv, not_picklable
from netgym.errors import InvalidActionError, InvalidRequestError
from netgym.protocol import BatchLayout

# The dtypes Gymnasium's vector envs give the infos' Python ints, floats and bools.
_PYTHON_SCALAR_DTYPES = frozenset(np.dtype(t) for t in (np.int64, np.float64, np.bool_))


def unbatch_info(info: dict[str, Any], index: int) -> dict[str, Any]:
    """Env ``index``'s own info from a vector info (the keys its mask sets).

    Values from the arrays that Python ints, floats and bools fill come back as
    such, as the env gave them (``json.dumps`` takes them; numpy's scalars it
    does not).
    """
    single: dict[str, Any] = {}
    for key, value in info.items():
        if key.startswith("_") and key[1:] in info:
            continue
        mask = info.get(f"_{key}")
        if mask is not None and not mask[index]:
            continue
        if isinstance(value, dict):
            single[key] = unbatch_info(value, index)
        elif (
            isinstance(value, np.ndarray)
            and value.ndim == 1
            and value.dtype in _PYTHON_SCALAR_DTYPES
        ):
            single[key] = value[index].item()
        else:
            single[key] = value[index]
    return single


class RemoteEnv(gym.Env[Any, Any]):
    """One env on an envapi, with the plain ``gymnasium.Env`` API and no autoreset.

    Takes the same arguments as ``RemoteVectorEnv`` but ``num_envs``. Its
    ``spec`` makes another session of the same env on the same envapi
    (``env.spec.make()``), as Gymnasium's checker and wrappers expect.
    """

    def __init__(self, env_id: str, **kwargs: Any) -> None:
        if kwargs.pop("render_mode", None) is not None:
            raise InvalidRequestError(NO_RENDERING)
        if "num_envs" in kwargs:
            raise InvalidRequestError(
                "netgym.make makes one env: for several stepped together, use "
                "netgym.make_vec(env_id, num_envs)"
            )
        if "autoreset_mode" in kwargs:
            raise InvalidRequestError(
                "one env does not reset itself (Gymnasium's Env API): call reset() when an "
                "episode ends; autoreset_mode is for netgym.make_vec"
            )
        self._vector = RemoteVectorEnv(env_id, 1, autoreset_mode=AutoresetMode.DISABLED, **kwargs)
        self.spec = self._vector.spec
        self.observation_space = self._vector.single_observation_space
        self.action_space = self._vector.single_action_space
        self._observations = BatchLayout(self.observation_space, 1)
        self._discrete = [isinstance(leaf.space, Discrete) for leaf in self._observations.leaves]
        self._actions = BatchLayout(self.action_space, 1, "action")
        self.env_id = env_id
        self.session_id = self._vector.session_id

    def _single(self, batch: Any) -> Any:
        leaves = self._observations.flatten(batch)
        return self._observations.assemble(
            # Discrete values as Python ints, as Gymnasium's own envs give them.
            [
                leaf[0].item() if discrete else leaf[0]
                for leaf, discrete in zip(leaves, self._discrete, strict=True)
            ]
        )

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        seed = single_seed(seed)
        super().reset(seed=seed)
        observations, info = self._vector.reset(seed=seed, options=options)
        return self._single(observations), unbatch_info(info, 0)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        values = [np.asarray(value) for value in self._actions.flatten_action(action)]
        for leaf, value in zip(self._actions.leaves, values, strict=True):
            if value.shape != leaf.shape[1:]:  # said of this env, not of a batch of one
                raise InvalidActionError(
                    f"{leaf.path} has shape {value.shape}, expected {leaf.shape[1:]} ({leaf.space})"
                )
        batch = self._actions.assemble([np.expand_dims(value, 0) for value in values])
        observations, rewards, terminations, truncations, info = self._vector.step(batch)
        return (
            self._single(observations),
            float(rewards[0]),
            bool(terminations[0]),
            bool(truncations[0]),
            unbatch_info(info, 0),
        )

    def render(self) -> None:
        raise NotImplementedError(NOT_RENDERED)

    def get_action_meanings(self) -> list[str] | None:
        """What each action does, as the server's env says (ALE's and NES games' names,
        e.g. ``["NOOP", "FIRE", ...]``); None for an env that names none."""
        return self._vector.get_action_meanings()

    @property
    def env_revision(self) -> str | None:
        """The version of the game an NES env plays (a digest of its folder's files,
        which changes when the folder is edited); None for envs that have none."""
        return self._vector.env_revision

    def ping(self) -> None:
        """One empty round trip to the session process."""
        self._vector.ping()

    def close(self) -> None:
        self._vector.close()

    def __repr__(self) -> str:
        return f"RemoteEnv({self.env_id!r}, url={self._vector.url!r})"

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise not_picklable(self)
