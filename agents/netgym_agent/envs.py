"""The training and evaluation envs: remote sessions on the envapi, as SB3 VecEnvs.

``make_env`` is the one place that opens a session, for training and for
evaluation alike, so that the kind of remote VecEnv (plain, or one that
reconnects after an envapi restart) is chosen on one line: ``sb3.ReconnectingVecEnv``,
so that training and evaluation go on when the envapi restarts or a session
dies (the episodes in flight are lost, logged, and left out of the monitor).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from netgym import sb3
from netgym.errors import (
    AuthenticationError,
    InvalidRequestError,
    LimitExceededError,
    UnknownEnvError,
)
from netgym_agent.config import TrainConfig
from netgym_agent.errors import ConfigError, EnvChangedError


def make_env(
    config: TrainConfig,
    *,
    num_envs: int,
    url: str | None,
    token: str | None,
    monitor_file: Path | None = None,
    stopping: Callable[[], bool] | None = None,
    num_envs_key: str = "env.num_envs",
) -> VecEnv:
    """One envapi session of ``num_envs`` copies of the config's env, episode-monitored.

    Args:
        config: the env id, its ``gymnasium.make`` kwargs and server-side wrappers.
        num_envs: envs in the session (training and evaluation differ).
        url: the envapi; None means ``$NETGYM_URL`` or the default.
        token: its access token; None means ``$NETGYM_TOKEN``.
        monitor_file: where SB3's ``VecMonitor`` writes one CSV row per episode.
        stopping: once it returns True, a reconnect under way gives up at once.
        num_envs_key: the config key that ``num_envs`` comes from, for its errors.

    Raises:
        ConfigError: when the server rejects ``env.kwargs`` or ``env.wrappers``.
        netgym.errors.NetgymError: the server cannot be reached, refuses the token, ...
    """
    try:
        remote = sb3.ReconnectingVecEnv(
            config.env.id,
            num_envs,
            url=url,
            token=token,
            env_kwargs=config.env.kwargs,
            wrappers=config.env.wrappers,
            reconnect_timeout_s=config.env.reconnect_timeout_s,
            stopping=stopping,
        )
    except InvalidRequestError as exc:
        raise ConfigError(
            f"the envapi rejected env {config.env.id!r} with env.kwargs {config.env.kwargs} "
            f"and env.wrappers {config.env.wrappers}: {exc.message}"
        ) from None
    except UnknownEnvError as exc:
        raise ConfigError(f"env.id: {exc.message}") from None
    except LimitExceededError as exc:
        if "num_envs" not in exc.details:  # the server's session limit: not the config's
            raise
        raise ConfigError(f"{num_envs_key}: {exc.message}; lower {num_envs_key}") from None
    except AuthenticationError as exc:
        raise AuthenticationError(
            f"{exc.message}; netgym-train sends --token, else $NETGYM_TOKEN",
            details=exc.details,
        ) from None
    return sb3.ReconnectAwareVecMonitor(
        remote, filename=str(monitor_file) if monitor_file else None
    )


class _SpacesOnly(VecEnv):
    """A VecEnv that has spaces and nothing else: wrapped as a model's env is, it
    shows the spaces the model sees (VecNormalize and SB3 change image spaces)."""

    def __init__(self, env: VecEnv) -> None:
        observation_space = copy.deepcopy(env.observation_space)  # VecNormalize edits a Dict
        super().__init__(env.num_envs, observation_space, env.action_space)

    def reset(self) -> Any:
        raise NotImplementedError

    def step_async(self, actions: np.ndarray) -> None:
        raise NotImplementedError

    def step_wait(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [None] * self.num_envs  # render_mode, which VecEnv asks for

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        raise NotImplementedError

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> Any:
        raise NotImplementedError

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * self.num_envs


def check_env_fits(
    env: VecEnv,
    config: TrainConfig,
    observation_space: spaces.Space[Any],
    action_space: spaces.Space[Any],
) -> None:
    """Check that ``env`` (monitored, not yet normalised) has the spaces a model of
    ``config`` was trained on, as the model sees them.

    Raises:
        EnvChangedError: naming the space that differs.
    """
    wrapped = normalize_env(_SpacesOnly(env), config, statistics=None, training=False)
    seen = BaseAlgorithm._wrap_env(wrapped, verbose=0, monitor_wrapper=False)
    for what, served, trained in (
        ("observation", seen.observation_space, observation_space),
        ("action", seen.action_space, action_space),
    ):
        if served != trained:
            raise EnvChangedError(
                f"{config.env.id} now has the {what} space {served}, but this run's model "
                f"was trained on {trained}: the env has changed since the run started (an "
                "edited game.toml, say); put it back as it was, or start a new run"
            )


def normalize_env(
    env: VecEnv, config: TrainConfig, *, statistics: Path | None, training: bool
) -> VecEnv:
    """Wrap ``env`` in ``VecNormalize`` when the config asks for it.

    Args:
        env: the monitored remote env (the monitor sees raw rewards).
        config: ``normalize`` and ``algo.hyperparams.gamma`` (for the return statistics).
        statistics: a saved ``VecNormalize`` to continue from, or None to start afresh.
        training: update the statistics while stepping (False for evaluation,
            which also reports raw rewards).
    """
    options = config.normalize
    if options is None:
        return env
    if statistics is not None:
        wrapped = VecNormalize.load(str(statistics), env)
    else:
        gamma = float(config.algo.hyperparams.get("gamma", 0.99))
        wrapped = VecNormalize(
            env,
            norm_obs=options.norm_obs,
            norm_reward=options.norm_reward,
            clip_obs=options.clip_obs,
            clip_reward=options.clip_reward,
            gamma=gamma,
        )
    wrapped.training = training
    if not training:
        wrapped.norm_reward = False
    return wrapped


def env_revision(env: VecEnv | None) -> str | None:
    """The version of the game the remote env under ``env``'s wrappers plays (an NES
    game's files' digest); None for envs that have none, and for no env."""
    if env is None:
        return None
    inner = env.unwrapped
    return inner.remote.env_revision if isinstance(inner, sb3.RemoteVecEnv) else None


def check_same_game(env: VecEnv, config: TrainConfig, revision: str | None, since: str) -> None:
    """Check that ``env`` plays ``revision`` of its game (None, or an env with no
    revision: nothing to check); ``since``: when that revision was played.

    Raises:
        EnvChangedError: the game's folder was edited since.
    """
    served = env_revision(env)
    if revision is not None and served is not None and served != revision:
        raise EnvChangedError(
            f"{config.env.id} has changed since {since} (revision {revision}, now "
            f"{served}: its game folder was edited), and this run's model "
            "learned the old game; put the folder back as it was, or start a new run (give "
            "the edited game a name of its own to keep both; --resume-latest, which the "
            "Compose agent runs, starts a new run by itself)",
            details={"revision": revision, "served": served},
        )


def reconnect_count(env: VecEnv) -> int:
    """How many times the ``ReconnectingVecEnv`` under ``env``'s wrappers reconnected."""
    inner = env.unwrapped
    return inner.reconnects if isinstance(inner, sb3.ReconnectingVecEnv) else 0
