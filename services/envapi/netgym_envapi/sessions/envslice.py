"""A contiguous slice of a session's envs, stepped in one worker process.

The slice reads actions from and writes results into the session's shared
memory, so no observation is ever pickled: only the small per-env info dicts
travel back through the worker's pipe. Whether a step may happen at all (every
env reset; with autoreset disabled, no env done) is the session's check, made
once for all slices before any of them steps.
"""

from __future__ import annotations

import contextlib
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any, Protocol, SupportsFloat, runtime_checkable

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Box

from netgym.emulator.env import EmulatorEnv
from netgym.errors import (
    ConnectionLostError,
    EnvError,
    NetgymError,
    SessionEndedError,
    WorkerTimeoutError,
)
from netgym.protocol import BatchLayout, ResultLayout
from netgym_envapi.sessions.config import AutoresetMode

EnvInfos = list[tuple[int, dict[str, Any]]]
StepResult = tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]


@runtime_checkable
class SplitStepEnv(Protocol):
    """An env whose step can be sent and collected apart (``EmulatorEnv``).

    Such an env steps in another process, so one process keeps many of them
    busy at once: send every env's action, then collect every result. A
    session of such envs needs no worker processes.
    """

    def step_send(self, action: Any) -> None: ...

    def step_receive(self, observation_out: np.ndarray | None = None) -> StepResult:
        """The step's results; with ``observation_out``, the observation is written
        there (saving a copy) and returned as that array."""
        ...


class StepTimerExpired(WorkerTimeoutError):
    """The session's own step timer (SIGALRM), raised inside an env's code: it ends
    the session, where the same error from an env's own connection must not."""


def as_netgym_error(exc: BaseException, env_index: int | None = None) -> NetgymError:
    """An env's exception as the error the client gets (call it where it is caught).

    With ``env_index``, the message and ``details["env_index"]`` say which env raised.
    """
    if not isinstance(exc, NetgymError):
        exc = EnvError(
            f"the env raised {type(exc).__name__}: {exc}",
            details={"traceback": traceback.format_exc()},
        )
    elif isinstance(exc, ConnectionLostError | SessionEndedError) and not isinstance(
        exc, StepTimerExpired
    ):
        # Raised by the env's own connections (an emulator's, a remote env's): the
        # session's client would take them for its own session's end.
        exc = EnvError(
            f"the env raised {type(exc).__name__}: {exc.message}",
            details={**exc.details, "cause": exc.code},
        )
    if env_index is not None and "env_index" not in exc.details:
        exc.details["env_index"] = env_index
        exc.message = f"env {env_index}: {exc.message}"
        exc.args = (exc.message,)
    return exc


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
        self.num_envs = results.num_envs
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
        self.split_step = bool(self.envs) and all(isinstance(e, SplitStepEnv) for e in self.envs)
        # One array per observation: a split-step env can write it in place.
        self._one_array = len(self._obs) == 1 and isinstance(results.observations.space, Box)
        self._sent: set[int] = set()
        self._send_failure: Exception | None = None

    def _write_obs(self, index: int, obs: Any) -> None:
        try:
            if self._one_array:
                self._obs[0][index] = obs
                return
            for leaf, value in zip(self._obs, self._obs_layout.flatten(obs), strict=True):
                leaf[index] = value
        except (ValueError, TypeError, KeyError) as exc:
            raise EnvError(
                f"the env returned an observation that does not fit its observation space "
                f"{self._obs_layout.space}: {type(exc).__name__}: {exc}"
            ) from None

    def reset(
        self, seeds: Sequence[int | None], options: dict[str, Any] | None, mask: np.ndarray | None
    ) -> EnvInfos:
        """Reset the envs ``mask`` selects (all when None); return their infos."""
        infos: EnvInfos = []
        selected = [
            offset for offset in range(len(self.envs)) if mask is None or mask[self.start + offset]
        ]
        failed_starts = _start_instances({offset: self.envs[offset] for offset in selected})
        for offset in selected:
            env, index = self.envs[offset], self.start + offset
            try:
                if offset in failed_starts:
                    raise failed_starts[offset]
                obs, info = env.reset(seed=seeds[index], options=options)
                self._write_obs(index, obs)
            except Exception as exc:
                raise self._of_env(exc, index) from None
            self._done[offset] = False
            infos.append((index, info))
        return infos

    def step(self) -> EnvInfos:
        """Step every env with the actions in shared memory; return their infos.

        The session has checked that every env was reset and, with autoreset
        disabled, that none is done.
        """
        split = self.split_step
        if split:
            self._send_steps()
        infos: EnvInfos = []
        failure: Exception | None = None
        for offset, env in enumerate(self.envs):
            index = self.start + offset
            in_place = False  # the observation is already in shared memory
            try:
                if self.autoreset_mode == AutoresetMode.NEXT_STEP and self._done[offset]:
                    obs, info = env.reset()
                    reward: SupportsFloat = 0.0
                    terminated, truncated = False, False
                else:
                    if split:
                        if offset not in self._sent:
                            continue  # its send failed: that error is raised below
                        out = self._obs[0][index] if self._one_array else None
                        obs, reward, terminated, truncated, info = env.step_receive(out)  # type: ignore[attr-defined]
                        in_place = obs is out
                    else:
                        obs, reward, terminated, truncated, info = env.step(self._action(index))
                    if self.autoreset_mode == AutoresetMode.SAME_STEP and (terminated or truncated):
                        # The reset's observation goes where this one lies: keep a copy.
                        final_obs = obs.copy() if in_place else obs
                        final = {"final_obs": final_obs, "final_info": info}
                        in_place = False
                        obs, info = env.reset()
                        info = {**info, **final}
                if not in_place:
                    self._write_obs(index, obs)
                self._rewards[index] = float(reward)
            except Exception as exc:
                if not split:
                    raise self._of_env(exc, index) from None
                # Collect every other env's reply first: one left unread would
                # answer that env's next step.
                failure = failure or self._of_env(exc, index)
                continue
            self._terminations[index] = terminated
            self._truncations[index] = truncated
            self._done[offset] = terminated or truncated
            if info:
                infos.append((index, info))
        if self._send_failure is not None:
            failure, self._send_failure = self._send_failure, None
        if failure is not None:
            raise failure
        return infos

    def release(self, mask: np.ndarray | None) -> EnvInfos:
        """Give back the emulator instances of the envs ``mask`` selects (all when None);
        their next reset starts new ones."""
        for offset, env in enumerate(self.envs):
            if (mask is None or mask[self.start + offset]) and isinstance(
                env.unwrapped, EmulatorEnv
            ):
                env.unwrapped.release()
        return []

    def _of_env(self, exc: Exception, index: int) -> NetgymError:
        """The error an env raised, naming the env when the session has several."""
        return as_netgym_error(exc, index if self.num_envs > 1 else None)

    def _action(self, index: int) -> Any:
        # Copies: an env may keep its action, and the next STEP (a refused one too)
        # is read into this memory.
        return self._actions.assemble([leaf[index].copy() for leaf in self._action_leaves])

    def _send_steps(self) -> None:
        """Send every stepping env its action (split-step envs); note which were sent."""
        self._sent = set()
        actions = self._split_actions()
        next_step = self.autoreset_mode == AutoresetMode.NEXT_STEP
        for offset, env in enumerate(self.envs):
            if next_step and self._done[offset]:
                continue
            try:
                env.step_send(actions[offset])  # type: ignore[attr-defined]
            except Exception as exc:
                self._send_failure = self._send_failure or self._of_env(exc, self.start + offset)
                continue
            self._sent.add(offset)

    def _split_actions(self) -> list[Any]:
        """This slice's actions: scalar ones (``Discrete``) as Python numbers, in one call."""
        leaves = self._action_leaves
        if len(leaves) == 1 and leaves[0].ndim == 1:
            return leaves[0][self.start : self.stop].tolist()  # type: ignore[no-any-return]
        return [self._action(index) for index in range(self.start, self.stop)]

    def close(self) -> None:
        """Close every env, going on past errors so that none is left open."""
        for env in self.envs:
            with contextlib.suppress(Exception):
                env.close()
        self.envs = []


def _start_instances(envs: dict[int, gym.Env[Any, Any]]) -> dict[int, Exception]:
    """Start the emulator instances that ``envs`` need, all at once; the errors of the
    starts that failed, by key. One after another, the starts of a game slow to
    start would add up within the reset's one ``step_timeout_s``."""
    needing = {
        key: env.unwrapped
        for key, env in envs.items()
        if isinstance(env.unwrapped, EmulatorEnv) and not env.unwrapped.has_live_instance()
    }
    failures: dict[int, Exception] = {}
    if len(needing) < 2:
        return failures  # its reset starts it

    def start(key: int, emulator: EmulatorEnv) -> None:
        try:
            emulator.start_instance()
        except Exception as exc:
            failures[key] = exc

    # Daemon threads: the session's step timer (SIGALRM) may end the session meanwhile.
    threads = [threading.Thread(target=start, args=item, daemon=True) for item in needing.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures
