"""stable-baselines3 on remote envs: ``RemoteVecEnv`` is an SB3 ``VecEnv``.

``ReconnectingVecEnv`` is a ``RemoteVecEnv`` that survives an envapi restart or
a lost session: it opens a new session and goes on, the episodes in flight
lost. ``ReconnectAwareVecMonitor`` is SB3's ``VecMonitor`` that does not count
those lost episodes as finished ones.

Needs ``pip install "/path/to/netgym[sb3]"``; importing ``netgym`` alone never imports SB3.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from netgym.extras import require_extra

require_extra("sb3", ("stable_baselines3",))

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import TimeLimit
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from netgym.client.env import unbatch_info
from netgym.client.vector import DEFAULT_TIMEOUT_S, RemoteVectorEnv
from netgym.errors import (
    ConnectionLostError,
    EnvError,
    InvalidRequestError,
    LimitExceededError,
    NetgymError,
    ReconnectFailedError,
    ServerUnavailableError,
    SessionEndedError,
    SessionNotFoundError,
)

logger = logging.getLogger("netgym")

RECONNECTED_KEY = "netgym.reconnected"
"""Info key set (to True) for every env whose episode a reconnect cut short."""

RETRYABLE_ERRORS: tuple[type[NetgymError], ...] = (
    ConnectionLostError,  # the data connection broke or timed out
    ServerUnavailableError,  # the envapi (or its emulator service) is down or restarting
    SessionEndedError,  # closed, idle, worker_crashed, worker_timeout: the session is gone
    SessionNotFoundError,  # a restarted envapi does not know the old session
)
"""Errors that mean the session is gone while the request itself was fine.

Besides these, an ``EnvError`` whose ``details["instance_lost"]`` is true: an
NES game's emulator instance crashed or was killed, as a worker may. One that
hung is raised: a game script in an endless loop would hang the next one too.

Everything else is raised at once: a bad action, bad arguments, a wrong token,
an unknown env, a protocol mismatch, a call out of order (the caller's bug),
and any other ``EnvError`` (the env's own code raised, a game's Lua script
say: the session is still usable, and a new session would hide a bug that
would only come back).
"""

_RETRYABLE_WHILE_RECONNECTING: tuple[type[NetgymError], ...] = (
    *RETRYABLE_ERRORS,
    LimitExceededError,
)
# A server that is full may free a slot soon (our own old session ending, say).

_FIRST_BACKOFF_S = 0.1
_MAX_BACKOFF_S = 5.0
_STOP_POLL_S = 0.1  # how soon a wait between attempts notices a stop


def is_retryable(exc: BaseException) -> bool:
    """Whether a ``ReconnectingVecEnv`` opens a new session after this error."""
    if isinstance(exc, EnvError):
        return exc.details.get("instance_lost") is True
    return isinstance(exc, RETRYABLE_ERRORS) and not isinstance(exc, ReconnectFailedError)


class RemoteVecEnv(VecEnv):
    """An SB3 ``VecEnv`` over one envapi session of ``num_envs`` envs.

    Takes ``RemoteVectorEnv``'s arguments. Finished envs reset on the same
    step, their last observation in ``infos[i]["terminal_observation"]``, as
    SB3's own VecEnvs do.
    """

    def __init__(self, env_id: str, num_envs: int = 1, **kwargs: Any) -> None:
        if "autoreset_mode" in kwargs:
            raise InvalidRequestError(
                "a RemoteVecEnv resets a finished env on the same step, as SB3's VecEnvs "
                "do: it takes no autoreset_mode (netgym.make_vec does)"
            )
        self.env_id = env_id
        self._remote_kwargs = kwargs
        self.remote = self._open_remote(num_envs)
        # The spec as made: a reconnect's session is opened with shorter timeouts.
        self._spec = self.remote.spec
        super().__init__(
            num_envs, self.remote.single_observation_space, self.remote.single_action_space
        )

    def _open_remote(self, num_envs: int, within_s: float | None = None) -> RemoteVectorEnv:
        """Open a session with the arguments this VecEnv was made with (within ``within_s``)."""
        kwargs = dict(self._remote_kwargs)
        if within_s is not None:
            given = kwargs.get("open_timeout_s")
            kwargs["open_timeout_s"] = within_s if given is None else min(given, within_s)
            kwargs["timeout_s"] = min(kwargs.get("timeout_s", DEFAULT_TIMEOUT_S), within_s)
        return RemoteVectorEnv(
            self.env_id, num_envs, autoreset_mode=AutoresetMode.SAME_STEP, **kwargs
        )

    def reset(self) -> VecEnvObs:
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = self._reset_options_to_send()
        observations, info = self.remote.reset(seed=seeds, options=options)
        self.reset_infos = [unbatch_info(info, i) for i in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return observations  # type: ignore[no-any-return]

    def set_options(self, options: list[dict[str, Any]] | dict[str, Any] | None = None) -> None:
        """SB3's ``set_options``.

        Raises:
            InvalidRequestError: for different options per env (a remote session
                resets every env with the same options); the options are then unset.
        """
        super().set_options(options)
        try:
            self._reset_options_to_send()
        except InvalidRequestError:
            self._reset_options()
            raise

    def _reset_options_to_send(self) -> dict[str, Any] | None:
        """The options of the next reset: one dict for every env (a session resets as one).

        Raises:
            InvalidRequestError: when ``set_options`` gave the envs different options.
        """
        first = self._options[0]
        if not all(options is first or _equal(options, first) for options in self._options):
            raise InvalidRequestError(
                "set_options() gave the envs different reset options, but a remote "
                "session resets every env with the same options; give one dict"
            )
        return first or None

    def step_async(self, actions: np.ndarray) -> None:
        if isinstance(self.action_space, spaces.MultiBinary):
            # SB3's Bernoulli policies act in floats (0.0 and 1.0): exact as integers.
            actions = np.asarray(actions).astype(self.action_space.dtype)
        self.remote.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        """SB3's step results. As in its ``DummyVecEnv``, a finished env's ``infos[i]``
        is its last step's info with ``terminal_observation``, and the next episode's
        reset info goes to ``reset_infos[i]``."""
        observations, rewards, terminations, truncations, info = self.remote.step_wait()
        dones = terminations | truncations
        infos: list[dict[str, Any]] = []
        for i in range(self.num_envs):
            env_info = unbatch_info(info, i)
            if dones[i]:
                final_info = env_info.pop("final_info", {})
                terminal_observation = env_info.pop("final_obs")
                self.reset_infos[i] = env_info
                env_info = {**final_info, "terminal_observation": terminal_observation}
            env_info["TimeLimit.truncated"] = bool(truncations[i] and not terminations[i])
            infos.append(env_info)
        return observations, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.remote.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        if attr_name in ("render_mode", "spec"):  # each env's, as the server describes it
            value = None if attr_name == "render_mode" else self._spec
            return [value for _ in self._get_indices(indices)]
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
        """True for SB3's ``Monitor`` when the server records episode statistics, and
        for Gymnasium's ``TimeLimit`` when the server's env has an episode limit.

        The ``episode_statistics`` wrapper puts ``info["episode"]`` (``r``, ``l``,
        ``t``) in a finished episode's info, as ``Monitor`` does: ``evaluate_policy``
        then counts whole episodes, not what ``clip_reward`` or a life lost make
        of them.
        """
        names = {
            w if isinstance(w, str) else w.get("name")
            for w in self._remote_kwargs.get("wrappers") or []
            if isinstance(w, str | dict)
        }
        wrapped = (issubclass(wrapper_class, Monitor) and "episode_statistics" in names) or (
            issubclass(wrapper_class, TimeLimit)
            and self.remote.episode_spec.get("max_episode_steps") is not None
        )
        return [wrapped for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]


class ReconnectingVecEnv(RemoteVecEnv):
    """A ``RemoteVecEnv`` that opens a new session when its session is lost.

    When a step or reset fails with an error of ``RETRYABLE_ERRORS`` (the
    envapi died or restarted, the session was closed, timed out or its worker
    crashed), or because an NES game's emulator instance died (``is_retryable``),
    it logs a warning on the ``"netgym"`` logger, opens a new session with the
    same arguments, retrying with exponential backoff for up to
    ``reconnect_timeout_s``, and resets it. Any other error is raised as is.

    What SB3 sees when a *step* reconnects: the new session's reset
    observations, reward 0 and ``done`` for every env, and in each info
    ``{"netgym.reconnected": True, "TimeLimit.truncated": True,
    "terminal_observation": <the env's last observation before the loss>}``.
    The lost episodes are thus truncations, not terminations: PPO and A2C
    bootstrap them with the value of the last observation, and DQN/SAC store
    them as timeouts, so no state learns a value of 0 from a network fault.
    ``VecMonitor`` would still log each one as a short finished episode; wrap
    with ``ReconnectAwareVecMonitor`` instead, which skips them. A *reset* that
    reconnects returns the new observations as a plain reset does.

    Seeds stay reproducible: a reset that reconnects uses the seeds it was
    asked for; after the ``k``-th reconnect during a step, env ``i`` gets
    ``np.random.SeedSequence([seed, k]).generate_state(num_envs)[i]``, where
    ``seed`` is the last one given to ``seed()`` (unseeded if none was).

    Making the env does not retry: a wrong URL or token fails at once.

    Args:
        env_id: as for ``RemoteVectorEnv``.
        num_envs: as for ``RemoteVectorEnv``.
        reconnect_timeout_s: how long one reconnect keeps trying before it
            raises ``ReconnectFailedError``.
        max_reconnects: raise ``ReconnectFailedError`` instead of a reconnect
            beyond this many (None: no limit); guards against an env that kills
            its session again and again.
        stopping: checked between reconnect attempts and while waiting for the
            next; once it returns True, the reconnect gives up at once with a
            ``ReconnectFailedError`` whose ``details["stopped"]`` is True (a
            trainer asked to stop must not wait out ``reconnect_timeout_s``).
        **kwargs: ``RemoteVectorEnv``'s other arguments (url, token, wrappers...).

    Attributes:
        reconnects: reconnects so far, for the trainer to log.
        lost_episodes: episodes cut short by them.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int = 1,
        *,
        reconnect_timeout_s: float = 120.0,
        max_reconnects: int | None = None,
        stopping: Callable[[], bool] | None = None,
        **kwargs: Any,
    ) -> None:
        if not reconnect_timeout_s > 0:
            raise InvalidRequestError(
                f"reconnect_timeout_s must be a positive number of seconds, "
                f"got {reconnect_timeout_s!r}"
            )
        if max_reconnects is not None and max_reconnects < 0:
            raise InvalidRequestError(
                f"max_reconnects must be None (no limit) or >= 0, got {max_reconnects!r}"
            )
        super().__init__(env_id, num_envs, **kwargs)
        self.reconnect_timeout_s = reconnect_timeout_s
        self.max_reconnects = max_reconnects
        self._stopping = stopping or (lambda: False)
        self.reconnects = 0
        self.lost_episodes = 0
        self._base_seed: int | None = None
        self._reset_options_used: dict[str, Any] | None = None
        self._last_obs: VecEnvObs | None = None
        self._step_failure: NetgymError | None = None
        # The game's revision (an NES game's) every new session must serve, once known.
        self._revision: str | None = self.remote.env_revision

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """SB3's ``seed``; also remembers the seed to derive reconnect seeds from."""
        seeds = super().seed(seed)
        self._base_seed = None if seeds[0] is None else int(seeds[0])
        return seeds

    def reset(self) -> VecEnvObs:
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        self._reset_options_used = self._reset_options_to_send()
        try:
            observations = super().reset()
        except NetgymError as exc:
            if not is_retryable(exc):
                raise
            observations = self._reconnect(exc, seeds)
            self._reset_seeds()
            self._reset_options()
        self._last_obs = observations
        return observations

    def step_async(self, actions: np.ndarray) -> None:
        self._step_failure = None
        try:
            super().step_async(actions)
        except NetgymError as exc:
            if not is_retryable(exc):
                raise
            self._step_failure = exc  # step_wait reconnects, where SB3 expects results

    def step_wait(self) -> VecEnvStepReturn:
        failure, self._step_failure = self._step_failure, None
        if failure is None:
            try:
                result = super().step_wait()
            except NetgymError as exc:
                if not is_retryable(exc):
                    raise
                failure = exc
            else:
                # A reference, not a copy: each step's observations are a fresh array,
                # which SB3 keeps a reference to as well (PPO's _last_obs).
                self._last_obs = result[0]
                return result
        return self._lose_episodes(failure)

    def _lose_episodes(self, failure: NetgymError) -> VecEnvStepReturn:
        """Reconnect mid-step: every episode in flight ends as a truncation."""
        last_obs = self._last_obs
        observations = self._reconnect(failure, self._derived_seeds(self.reconnects + 1))
        self.lost_episodes += self.num_envs
        infos: list[dict[str, Any]] = []
        for i in range(self.num_envs):
            info: dict[str, Any] = {RECONNECTED_KEY: True, "TimeLimit.truncated": True}
            if last_obs is not None:
                info["terminal_observation"] = _env_obs(last_obs, i)
            infos.append(info)
        self._last_obs = observations
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        return observations, rewards, np.ones(self.num_envs, dtype=bool), infos

    def _derived_seeds(self, reconnect: int) -> list[int] | None:
        """Seeds for the reset after reconnect number ``reconnect``."""
        if self._base_seed is None:
            return None
        state = np.random.SeedSequence([self._base_seed, reconnect]).generate_state(self.num_envs)
        return [int(s) for s in state]

    def _reconnect(self, failure: NetgymError, seeds: list[int | None] | list[int] | None) -> Any:
        """Close what is left, open and reset a new session; return its observations.

        Raises:
            ReconnectFailedError: past ``max_reconnects``, or no new session
                within ``reconnect_timeout_s``.
            NetgymError: an error no retry can fix (e.g. the env is no longer served).
        """
        lost_session = self.remote.session_id
        if self.max_reconnects is not None and self.reconnects >= self.max_reconnects:
            raise ReconnectFailedError(
                f"lost session {lost_session} of {self.env_id} ({failure.message}) after "
                f"{self.reconnects} reconnects already, the most max_reconnects allows; "
                "if the env itself keeps ending its sessions, fix it, else raise max_reconnects"
            ) from failure
        self.reconnects += 1
        logger.warning(
            "lost session %s of %s at %s (%s: %s); the episodes in flight are lost; "
            "opening a new session (reconnect %d)",
            lost_session,
            self.env_id,
            self.remote.url,
            type(failure).__name__,
            failure.message,
            self.reconnects,
        )
        self.remote.close()
        started = time.monotonic()
        deadline = started + self.reconnect_timeout_s
        delay = _FIRST_BACKOFF_S
        attempts = 0
        last_error: NetgymError = failure
        while True:
            if self._stopping():
                raise ReconnectFailedError(
                    f"lost session {lost_session} of {self.env_id} ({failure.message}), and "
                    f"gave up reconnecting after {attempts} attempts: a stop was asked for",
                    details={"stopped": True},
                ) from last_error
            attempts += 1
            try:
                return self._open_and_reset(seeds, started, attempts, deadline)
            except NetgymError as exc:
                if not isinstance(exc, _RETRYABLE_WHILE_RECONNECTING):
                    exc.add_note(
                        f"while reconnecting {self.env_id} at {self.remote.url} after losing "
                        f"session {lost_session}: this error is not one a retry can fix"
                    )
                    raise
                last_error = exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                services = "and its emulator service " if self.env_id.startswith("netgym/") else ""
                raise ReconnectFailedError(
                    f"lost session {lost_session} of {self.env_id} ({failure.message}) and "
                    f"could not open a new one at {self.remote.url} within "
                    f"reconnect_timeout_s={self.reconnect_timeout_s:g} s ({attempts} attempts; "
                    f"last error: {last_error.message}); is the envapi {services}running? "
                    "Raise reconnect_timeout_s to wait longer"
                ) from last_error
            logger.info(
                "reconnect attempt %d failed (%s); retrying in %.1f s",
                attempts,
                last_error.message,
                min(delay, remaining),
            )
            wake_at = time.monotonic() + min(delay, remaining)
            while not self._stopping() and (left := wake_at - time.monotonic()) > 0:
                time.sleep(min(left, _STOP_POLL_S))
            delay = min(delay * 2, _MAX_BACKOFF_S)

    def _open_and_reset(
        self,
        seeds: list[int | None] | list[int] | None,
        started: float,
        attempts: int,
        deadline: float,
    ) -> Any:
        """One attempt: a new session, checked and reset, replaces ``self.remote``.

        Opening, attaching to and resetting the session may take until
        ``deadline`` (``time.monotonic()``), so that a hung envapi cannot hold
        the attempt past ``reconnect_timeout_s``.
        """
        remote = self._open_remote(self.num_envs, max(deadline - time.monotonic(), 0.1))
        try:
            if (
                remote.single_observation_space != self.observation_space
                or remote.single_action_space != self.action_space
            ):
                raise NetgymError(
                    f"the envapi at {remote.url} now serves {self.env_id} with observation "
                    f"space {remote.single_observation_space} and action space "
                    f"{remote.single_action_space}, not {self.observation_space} and "
                    f"{self.action_space} as before; training cannot go on with other spaces"
                )
            old, new = self._revision, remote.env_revision
            if old is not None and new is not None and new != old:
                raise EnvError(
                    f"{self.env_id} has changed since this env was made: the envapi at "
                    f"{remote.url} now serves another revision of it ({new}, not {old}: its "
                    "game folder was edited), and training cannot go on with another game "
                    "without a word; to train on the new one, make the env again (a new run), "
                    "or give the edited game a name of its own",
                    details={"revision": old, "served": new},
                )
            observations, info = remote.reset(seed=seeds, options=self._reset_options_used)
        except BaseException:
            remote.close()
            raise
        # Bounded by the reconnect's deadline until now; the session's steps get their own.
        remote.set_timeout(self._remote_kwargs.get("timeout_s", DEFAULT_TIMEOUT_S))
        self.remote = remote
        self._revision = remote.env_revision or self._revision
        self.reset_infos = [unbatch_info(info, i) for i in range(self.num_envs)]
        logger.warning(
            "reconnected to %s after %.1f s (%d attempts): new session %s of %s",
            remote.url,
            time.monotonic() - started,
            attempts,
            remote.session_id,
            self.env_id,
        )
        return observations


class ReconnectAwareVecMonitor(VecMonitor):
    """SB3's ``VecMonitor``, except that episodes a reconnect cut short are not logged.

    ``VecMonitor`` records an episode (``info["episode"]``, the monitor file)
    whenever ``done`` is set; the episodes ``ReconnectingVecEnv`` loses are set
    ``done`` too, and would show up as short, low-return episodes. This one
    drops their counters instead and counts them in ``lost_episodes``. Where
    the server's ``episode_statistics`` wrapper gave an episode's return and
    length (the game's own, before ``clip_reward``), those are recorded.
    """

    def __init__(
        self,
        venv: VecEnv,
        filename: str | None = None,
        info_keywords: tuple[str, ...] = (),
    ) -> None:
        with warnings.catch_warnings():
            # Its warning that a Monitor's statistics are overwritten: this one keeps them.
            warnings.filterwarnings("ignore", "The environment is already wrapped with a `Monitor`")
            super().__init__(venv, filename, info_keywords)
        self.lost_episodes = 0

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        self.episode_returns += rewards
        self.episode_lengths += 1
        new_infos = list(infos)
        for i in np.flatnonzero(dones):
            info = dict(infos[i])
            if not info.get(RECONNECTED_KEY):
                server = info.get("episode")
                if not (isinstance(server, dict) and "r" in server and "l" in server):
                    server = {"r": self.episode_returns[i], "l": self.episode_lengths[i]}
                episode_info = {
                    "r": float(server["r"]),
                    "l": int(server["l"]),
                    "t": round(time.time() - self.t_start, 6),
                }
                for key in self.info_keywords:
                    episode_info[key] = info[key]
                info["episode"] = episode_info
                self.episode_count += 1
                if self.results_writer:
                    self.results_writer.write_row(episode_info)
                new_infos[i] = info
            else:
                self.lost_episodes += 1
            self.episode_returns[i] = 0
            self.episode_lengths[i] = 0
        return obs, rewards, dones, new_infos


def _env_obs(observations: Any, index: int) -> Any:
    """Env ``index``'s observation from a batch (an array, or a dict or tuple of them)."""
    if isinstance(observations, dict):
        return {key: _env_obs(value, index) for key, value in observations.items()}
    if isinstance(observations, tuple):
        return tuple(_env_obs(value, index) for value in observations)
    return observations[index]


def _equal(first: Any, second: Any) -> bool:
    """``first == second``, where dicts of arrays compare as equal or not, never raise."""
    try:
        return bool(first == second)
    except ValueError:  # numpy arrays inside: their == is elementwise
        return False
