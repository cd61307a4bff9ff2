"""A contiguous slice of a session's envs, stepped in one worker process.

The slice reads actions from and writes results into the session's shared
memory, so no observation is ever pickled: only the small per-env info dicts
travel back through the worker's pipe. Whether a step may happen at all (every
env reset; with autoreset disabled, no env done) is the session's check, made
once for all slices before any of them steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from netgym.protocol import BatchLayout, ResultLayout
from netgym_envapi.sessions.config import AutoresetMode

EnvInfos = list[tuple[int, dict[str, Any]]]


class EnvSlice:
    """Envs ``start`` to ``stop - 1`` of a session, over its shared buffers."""

    def __init__(
        self,
        make_env: Callable[[], gym.Env[Any, Any]],
        start: int,
        stop: int,
        results: ResultLayout,
        actions: BatchLayout,
        result_buffer: Any,
        action_buffer: Any,
        autoreset_mode: AutoresetMode,
    ) -> None:
        self.start, self.stop = start, stop
        self.autoreset_mode = autoreset_mode
        self._obs_layout = results.observations
        self._actions = actions
        self.envs: list[gym.Env[Any, Any]] = []
        try:
            for _ in range(start, stop):
                self.envs.append(make_env())
        except BaseException:
            self.close()
            raise
        arrays = results.step_views(result_buffer)
        self._obs = arrays.observations
        self._rewards, self._terminations = arrays.rewards, arrays.terminations
        self._truncations = arrays.truncations
        self._action_leaves = actions.views(action_buffer)
        self._done = np.zeros(stop - start, dtype=np.bool_)

    def _write_obs(self, index: int, obs: Any) -> None:
        for leaf, value in zip(self._obs, self._obs_layout.flatten(obs), strict=True):
            leaf[index] = value

    def reset(
        self, seeds: Sequence[int | None], options: dict[str, Any] | None, mask: np.ndarray | None
    ) -> EnvInfos:
        """Reset the envs ``mask`` selects (all when None); return their infos."""
        infos: EnvInfos = []
        for offset, env in enumerate(self.envs):
            index = self.start + offset
            if mask is not None and not mask[index]:
                continue
            obs, info = env.reset(seed=seeds[index], options=options)
            self._write_obs(index, obs)
            self._done[offset] = False
            infos.append((index, info))
        return infos

    def step(self) -> EnvInfos:
        """Step every env with the actions in shared memory; return their infos.

        The session has checked that every env was reset and, with autoreset
        disabled, that none is done.
        """
        infos: EnvInfos = []
        for offset, env in enumerate(self.envs):
            index = self.start + offset
            if self.autoreset_mode == AutoresetMode.NEXT_STEP and self._done[offset]:
                obs, info = env.reset()
                reward: SupportsFloat = 0.0
                terminated, truncated = False, False
            else:
                action = self._actions.assemble([leaf[index] for leaf in self._action_leaves])
                obs, reward, terminated, truncated, info = env.step(action)
                if self.autoreset_mode == AutoresetMode.SAME_STEP and (terminated or truncated):
                    final = {"final_obs": obs, "final_info": info}
                    obs, info = env.reset()
                    info = {**info, **final}
            self._write_obs(index, obs)
            self._rewards[index] = float(reward)
            self._terminations[index] = terminated
            self._truncations[index] = truncated
            self._done[offset] = terminated or truncated
            if info:
                infos.append((index, info))
        return infos

    def close(self) -> None:
        """Close every env, going on past errors so that none is left open."""
        for env in self.envs:
            with contextlib.suppress(Exception):
                env.close()
        self.envs = []
