"""Small envs that misbehave on purpose, served to the fault tests.

Action 0 is a normal step; action 1 makes the env hang, crash, raise or return an
info that cannot be sent.
"""

from __future__ import annotations

import ctypes
import hashlib
import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class _FaultEnv(gym.Env[np.ndarray, int]):
    observation_space = spaces.Box(0, 1000, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.count = 0
        return np.zeros(1, np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if action == 1:
            self.fault()
        self.count += 1
        return np.array([self.count], np.float32), 1.0, False, self.count >= 1000, {}

    def fault(self) -> None:
        raise NotImplementedError


class HangEnv(_FaultEnv):
    def fault(self) -> None:
        time.sleep(3600)


class CrashEnv(_FaultEnv):
    def fault(self) -> None:
        ctypes.string_at(0)  # a segfault, as a broken native env would


class RaiseEnv(_FaultEnv):
    def fault(self) -> None:
        raise RuntimeError("the env broke on purpose")


class CHangEnv(_FaultEnv):
    def fault(self) -> None:
        # Hours inside one C call: no Python signal handler (SIGALRM) runs meanwhile.
        hashlib.pbkdf2_hmac("sha256", b"netgym", b"salt", 2**31 - 1)


class SlowRaiseEnv(_FaultEnv):
    def fault(self) -> None:
        time.sleep(0.5)  # time for a client to vanish before the error goes out
        raise RuntimeError("the env broke slowly on purpose")


class BadInfoEnv(_FaultEnv):
    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(0)
        if action == 1:
            info = {"digits": [10**5000]}  # JSON carries no int this long
        return obs, reward, terminated, truncated, info


for _name, _cls in [
    ("Hang", HangEnv),
    ("Crash", CrashEnv),
    ("Raise", RaiseEnv),
    ("CHang", CHangEnv),
    ("SlowRaise", SlowRaiseEnv),
    ("BadInfo", BadInfoEnv),
]:
    if f"netgym-test/{_name}-v0" not in gym.registry:
        gym.register(f"netgym-test/{_name}-v0", entry_point=f"tests.fault_envs:{_cls.__name__}")
