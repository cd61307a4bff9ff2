"""The fixed-size part of RESET_RESULT and STEP_RESULT bodies.

A STEP_RESULT body is the observations (a ``BatchLayout``), then ``num_envs``
rewards (f64), terminations (bool, one byte) and truncations (bool), each
section 8-byte aligned, then the info value. A RESET_RESULT body is the
observations, then the info value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from netgym.protocol.spaces import BatchLayout


def _aligned(offset: int) -> int:
    return (offset + 7) // 8 * 8


@dataclass
class StepArrays:
    """Views of one step's fixed-size results over a buffer."""

    observations: list[np.ndarray]
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray


class ResultLayout:
    """Where each part of a step's results lies in a message body."""

    def __init__(self, observation_space: spaces.Space[Any], num_envs: int) -> None:
        self.num_envs = num_envs
        self.observations = BatchLayout(observation_space, num_envs, "observation")
        self.rewards_offset = self.observations.nbytes
        self.terminations_offset = _aligned(self.rewards_offset + 8 * num_envs)
        self.truncations_offset = _aligned(self.terminations_offset + num_envs)
        self.step_nbytes = _aligned(self.truncations_offset + num_envs)
        self.reset_nbytes = self.observations.nbytes

    def step_views(self, buffer: Any) -> StepArrays:
        """Arrays over a buffer of at least ``step_nbytes`` (no copy)."""
        n = self.num_envs
        return StepArrays(
            observations=self.observations.views(buffer),
            rewards=np.frombuffer(buffer, "<f8", n, self.rewards_offset),
            terminations=np.frombuffer(buffer, np.bool_, n, self.terminations_offset),
            truncations=np.frombuffer(buffer, np.bool_, n, self.truncations_offset),
        )
