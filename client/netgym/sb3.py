"""stable-baselines3 on remote envs: ``RemoteVecEnv`` is an SB3 ``VecEnv``.

Needs ``pip install netgym[sb3]``; importing ``netgym`` alone never imports SB3.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from netgym.client.env import unbatch_info
from netgym.client.vector import RemoteVectorEnv


class RemoteVecEnv(VecEnv):
    """An SB3 ``VecEnv`` over one envapi session of ``num_envs`` envs.

    Takes ``RemoteVectorEnv``'s arguments. Finished envs reset on the same
    step, their last observation in ``infos[i]["terminal_observation"]``, as
    SB3's own VecEnvs do.
    """

    def __init__(self, env_id: str, num_envs: int = 1, **kwargs: Any) -> None:
        self.remote = RemoteVectorEnv(
            env_id, num_envs, autoreset_mode=AutoresetMode.SAME_STEP, **kwargs
        )
        super().__init__(
            num_envs, self.remote.single_observation_space, self.remote.single_action_space
        )

    def reset(self) -> VecEnvObs:
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = self._options[0] or None
        observations, info = self.remote.reset(seed=seeds, options=options)
        self.reset_infos = [unbatch_info(info, i) for i in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return observations  # type: ignore[no-any-return]

    def step_async(self, actions: np.ndarray) -> None:
        self.remote.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        observations, rewards, terminations, truncations, info = self.remote.step_wait()
        dones = terminations | truncations
        infos: list[dict[str, Any]] = []
        for i in range(self.num_envs):
            env_info = unbatch_info(info, i)
            if dones[i]:
                final_info = env_info.pop("final_info", {})
                env_info = {**env_info, **final_info}
                env_info["terminal_observation"] = env_info.pop("final_obs")
                env_info["TimeLimit.truncated"] = bool(truncations[i] and not terminations[i])
            infos.append(env_info)
        return observations, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.remote.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        if attr_name == "render_mode":
            return [None for _ in self._get_indices(indices)]
        raise AttributeError(
            f"remote envs expose no attribute {attr_name!r}: they live in another process"
        )

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(f"cannot set {attr_name!r} on remote envs")

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        raise AttributeError(f"cannot call {method_name!r} on remote envs")

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]
