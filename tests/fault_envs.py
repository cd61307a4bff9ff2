"""Small envs that misbehave on purpose, served to the fault tests, and one with buttons.

Action 0 is a normal step; action 1 makes the env hang, crash, raise or return an
info that cannot be sent. ``ButtonsEnv`` has MultiBinary actions and infos that
tell a reset's from a step's; ``ResizingEnv`` changes its spaces between sessions.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from netgym.errors import ConnectionLostError, NetgymError


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


class ServiceOnlyError(NetgymError):
    """An error class the client does not have, as a service's own are."""

    code = "service_only"


class PeerRaiseEnv(_FaultEnv):
    def fault(self) -> None:
        raise ServiceOnlyError("a service's own error, on purpose")


class LostConnectionEnv(_FaultEnv):
    def fault(self) -> None:
        raise ConnectionLostError("the env's own connection broke, on purpose")


class SlowMakeEnv(_FaultEnv):
    def __init__(self) -> None:
        time.sleep(3600)  # past any make timeout


class ReadyAtSigtermEnv(_FaultEnv):
    """Writes ``marker`` while it is made, and is made once SIGTERM comes, which it
    then ignores: its "ready" always comes after the DELETE that sent SIGTERM."""

    terminated = False

    def __init__(self, marker: str) -> None:
        def note(signum: int, frame: object) -> None:
            ReadyAtSigtermEnv.terminated = True

        signal.signal(signal.SIGTERM, note)
        Path(marker).write_text("making")
        deadline = time.monotonic() + 60
        while not ReadyAtSigtermEnv.terminated and time.monotonic() < deadline:
            time.sleep(0.01)


class GateEnv(_FaultEnv):
    """Action 1 waits until the file ``gate`` exists, then steps as action 0 does."""

    def __init__(self, gate: str) -> None:
        self.gate = Path(gate)

    def fault(self) -> None:
        while not self.gate.exists():
            time.sleep(0.01)


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


class BadObsEnv(_FaultEnv):
    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(0)
        if action == 1:
            obs = np.zeros(2, np.float32)  # its space holds one value
        return obs, reward, terminated, truncated, info


class BadDictObsEnv(gym.Env[dict[str, Any], int]):
    """Action 1 gives an observation without one of its space's keys."""

    observation_space = spaces.Dict({"count": spaces.Discrete(1001), "lives": spaces.Discrete(4)})
    action_space = spaces.Discrete(2)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        return {"count": 0, "lives": 3}, {}

    def step(self, action: int) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        obs = {"count": 1} if action == 1 else {"count": 1, "lives": 3}
        return obs, 1.0, False, False, {}


class BadRewardEnv(_FaultEnv):
    def step(self, action: int) -> tuple[np.ndarray, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(0)
        return obs, (None if action == 1 else reward), terminated, truncated, info


class RaiseOnResetEnv(_FaultEnv):
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        raise RuntimeError("this env never starts, on purpose")


class EchoOptionsEnv(_FaultEnv):
    """Its reset info says what options it got: -1 for None, else how many keys."""

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, _ = super().reset(seed=seed)
        return obs, {"options": -1 if options is None else len(options)}


class ButtonsEnv(gym.Env[np.ndarray, np.ndarray]):
    """Three buttons (MultiBinary); the reward counts the pressed ones; 3 steps an episode."""

    observation_space = spaces.Box(0, 3, (1,), np.float32)
    action_space = spaces.MultiBinary(3)

    def __init__(self) -> None:
        self.resets = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.resets += 1
        self.count = 0
        return np.zeros(1, np.float32), {"resets": self.resets}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        assert action.dtype == np.int8 and set(action.tolist()) <= {0, 1}, action
        self.count += 1
        reward = float(action.sum())
        return np.array([reward], np.float32), reward, self.count >= 3, False, {"step": self.count}


class KeepsActionEnv(gym.Env[np.ndarray, np.ndarray]):
    """Observes the action of the step before, as it kept it (an env may keep what it is given)."""

    observation_space = spaces.Box(-10, 10, (2,), np.float32)
    action_space = spaces.Box(-10, 10, (2,), np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.kept = np.zeros(2, np.float32)
        return self.kept.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        previous, self.kept = self.kept, action
        return np.array(previous, np.float32), 0.0, False, False, {}


class HangOnCloseEnv(_FaultEnv):
    def close(self) -> None:
        if hasattr(self, "count"):  # reset once: the envapi's own make-and-close passes
            time.sleep(3600)


class RaiseOnCloseEnv(_FaultEnv):
    def close(self) -> None:
        raise RuntimeError("close broke on purpose")


class FineBoundsEnv(gym.Env[np.ndarray, int]):
    """A Box with bounds per element: its spaces take ~400 KB of JSON to describe."""

    observation_space = spaces.Box(
        np.zeros((84, 84, 3), np.float32),
        np.random.default_rng(0).random((84, 84, 3), np.float32) + 1,
    )
    action_space = spaces.Discrete(2)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return np.zeros((84, 84, 3), np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        return np.zeros((84, 84, 3), np.float32), 0.0, False, False, {}


class BigObsEnv(_FaultEnv):
    """An 8 MB observation: more than a socket's buffers hold."""

    observation_space = spaces.Box(0, 255, (2048, 4096), np.uint8)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return np.zeros(self.observation_space.shape, np.uint8), {}


class ResizingEnv(gym.Env[np.ndarray, int]):
    """Observations of the shape the file ``$NETGYM_TEST_SIZE_FILE`` holds when it is made
    (``4``: floats, ``8 8 3``: an image): an env that changes between runs, as an edited
    game does."""

    action_space = spaces.Discrete(2)

    def __init__(self) -> None:
        shape = tuple(int(n) for n in Path(os.environ["NETGYM_TEST_SIZE_FILE"]).read_text().split())
        self.observation_space = (
            spaces.Box(0, 255, shape, np.uint8)
            if len(shape) == 3
            else spaces.Box(0, 1, shape, np.float32)
        )

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.count = 0
        return np.zeros(self.observation_space.shape, self.observation_space.dtype), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.count += 1
        obs = np.zeros(self.observation_space.shape, self.observation_space.dtype)
        return obs, float(action), False, self.count >= 20, {}


for _name, _cls in [
    ("Resizing", ResizingEnv),
    ("Hang", HangEnv),
    ("Crash", CrashEnv),
    ("Raise", RaiseEnv),
    ("PeerRaise", PeerRaiseEnv),
    ("LostConnection", LostConnectionEnv),
    ("SlowMake", SlowMakeEnv),
    ("ReadyAtSigterm", ReadyAtSigtermEnv),
    ("Gate", GateEnv),
    ("CHang", CHangEnv),
    ("SlowRaise", SlowRaiseEnv),
    ("BadInfo", BadInfoEnv),
    ("BadObs", BadObsEnv),
    ("BadDictObs", BadDictObsEnv),
    ("BadReward", BadRewardEnv),
    ("RaiseOnReset", RaiseOnResetEnv),
    ("EchoOptions", EchoOptionsEnv),
    ("BigObs", BigObsEnv),
    ("Buttons", ButtonsEnv),
    ("KeepsAction", KeepsActionEnv),
    ("FineBounds", FineBoundsEnv),
    ("HangOnClose", HangOnCloseEnv),
    ("RaiseOnClose", RaiseOnCloseEnv),
]:
    if f"netgym-test/{_name}-v0" not in gym.registry:
        gym.register(f"netgym-test/{_name}-v0", entry_point=f"tests.fault_envs:{_cls.__name__}")
if "netgym-test/ByClass-v0" not in gym.registry:  # registered with the class itself
    gym.register("netgym-test/ByClass-v0", entry_point=ButtonsEnv)
