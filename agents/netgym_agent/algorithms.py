"""SB3 algorithms by name: hyperparameters from the config, and models saved and loaded.

Hyperparameters use rl-baselines3-zoo's names and conventions, so a zoo entry
can be copied into ``algo.hyperparams``: ``lin_<x>`` is a schedule falling
linearly from ``x`` to 0 over the run, ``policy_kwargs`` is a mapping (not
the zoo's Python string) whose ``activation_fn`` and ``optimizer_class`` are
names such as ``tanh`` or ``RMSpropTFLike``.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

import torch
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv

from netgym_agent.errors import CheckpointError, ConfigError, did_you_mean

if TYPE_CHECKING:
    from netgym_agent.config import AlgoConfig, TrainConfig

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "dqn": DQN}

MODEL_FILE = "model.zip"
VECNORMALIZE_FILE = "vecnormalize.pkl"
REPLAY_BUFFER_FILE = "replay_buffer.pkl"

SCHEDULE_KEYS = frozenset({"learning_rate", "clip_range", "clip_range_vf"})

_SET_ELSEWHERE = {
    "env": "env.id",
    "policy": "algo.policy",
    "seed": "seed",
    "device": "device",
    "verbose": "nothing: the agent prints its own progress",
    "tensorboard_log": "nothing: TensorBoard logs go to the run folder",
    "n_envs": "env.num_envs",
    "n_timesteps": "total_timesteps",
    "normalize": "normalize",
    "frame_stack": "env.wrappers, as {name: frame_stack, kwargs: {stack_size: N}}",
    "env_wrapper": "env.wrappers (server-side wrappers such as atari)",
}

_ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    "tanh": torch.nn.Tanh,
    "relu": torch.nn.ReLU,
    "elu": torch.nn.ELU,
    "leaky_relu": torch.nn.LeakyReLU,
    "gelu": torch.nn.GELU,
    "silu": torch.nn.SiLU,
}

_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "Adam": torch.optim.Adam,
    "AdamW": torch.optim.AdamW,
    "RMSprop": torch.optim.RMSprop,
    "SGD": torch.optim.SGD,
    "RMSpropTFLike": RMSpropTFLike,
}


def check_hyperparams(algo: AlgoConfig, source: str = "config") -> None:
    """Check the policy name and every hyperparameter against the SB3 class.

    Raises:
        ConfigError: naming the ``algo.*`` key, the bad value and what is allowed.
    """
    cls = ALGORITHMS[algo.name]
    policies = list(cls.policy_aliases)
    if algo.policy not in policies:
        raise ConfigError(
            f"{source}: algo.policy: {cls.__name__} has no policy {algo.policy!r}"
            f"{did_you_mean(algo.policy, policies)}; known: {', '.join(policies)}"
        )
    accepted = _init_parameters(cls)
    for key, value in algo.hyperparams.items():
        where = f"{source}: algo.hyperparams.{key}"
        if key in _SET_ELSEWHERE:
            raise ConfigError(f"{where}: not a hyperparameter here; set {_SET_ELSEWHERE[key]}")
        if key not in accepted:
            raise ConfigError(
                f"{where}: {cls.__name__} takes no hyperparameter {key!r}"
                f"{did_you_mean(key, accepted)}; it takes {', '.join(sorted(accepted))}"
            )
        try:
            _convert(cls, key, value)
        except (ValueError, OverflowError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if key == "policy_kwargs":
            _check_policy_kwargs(algo.policy, cls.policy_aliases[algo.policy], value, where)


def _check_policy_kwargs(name: str, policy: type, kwargs: dict[str, Any], where: str) -> None:
    """Refuse a ``policy_kwargs`` key the policy does not take (SB3's TypeError names no fix)."""
    parameters = inspect.signature(policy).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    given_by_sb3 = {"self", "observation_space", "action_space", "lr_schedule"}
    accepted = sorted(set(parameters) - given_by_sb3)
    for key in kwargs:
        if key not in accepted:
            raise ConfigError(
                f"{where}: {name} takes no keyword {key!r}"
                f"{did_you_mean(str(key), accepted)}; it takes {', '.join(accepted)}"
            )


def model_kwargs(algo: AlgoConfig) -> dict[str, Any]:
    """The config's hyperparameters as keyword arguments of the SB3 class."""
    cls = ALGORITHMS[algo.name]
    return {key: _convert(cls, key, value) for key, value in algo.hyperparams.items()}


def new_model(config: TrainConfig, env: VecEnv, device: torch.device) -> BaseAlgorithm:
    """A fresh model for ``config`` on ``env``, seeded with ``config.seed``.

    Raises:
        ConfigError: when SB3 refuses the hyperparameters or the policy's
            keyword arguments (a wrong type or name it alone can check).
    """
    cls = ALGORITHMS[config.algo.name]
    if config.algo.policy == "MultiInputPolicy" and not isinstance(
        env.observation_space, spaces.Dict
    ):  # SB3 fails on it with an AttributeError deep in its feature extractor
        raise ConfigError(
            f"algo.policy: MultiInputPolicy is for Dict observations, and {config.env.id}'s "
            f"are a {type(env.observation_space).__name__}: use MlpPolicy (CnnPolicy for "
            "screens)"
        )
    try:
        return cls(
            config.algo.policy,
            env,
            seed=config.seed,
            device=device,
            verbose=0,
            **model_kwargs(config.algo),
        )
    except (TypeError, ValueError, AssertionError) as exc:
        raise ConfigError(
            f"algo: stable-baselines3's {cls.__name__} refused algo.hyperparams or "
            f"algo.policy ({config.algo.policy}): {type(exc).__name__}: {exc}"
        ) from None


# About how many steps apart A2C writes its rollout/ and train/ scalars: SB3's
# default, every 100 updates (of 5 steps of each env), wrote none in a short run.
A2C_LOG_EVERY_STEPS = 256


def log_interval(model: BaseAlgorithm) -> int:
    """``learn()``'s ``log_interval``: SB3's defaults (every rollout for PPO, every
    4 episodes for DQN), but for A2C, about every ``A2C_LOG_EVERY_STEPS`` steps."""
    if isinstance(model, A2C):
        return max(1, A2C_LOG_EVERY_STEPS // (model.n_steps * model.n_envs))
    return 1 if isinstance(model, PPO) else 4


def load_model(
    config: TrainConfig, directory: Path, env: VecEnv, device: torch.device
) -> BaseAlgorithm:
    """The model saved in ``directory``, attached to ``env`` and ready to go on learning.

    The step count, update count, schedules' progress and the last 100
    episodes come back with the model; a saved replay buffer too. The env is
    new, so the first ``learn`` call resets it instead of reusing the last
    observation saved in the checkpoint.
    """
    cls = ALGORITHMS[config.algo.name]
    model = cls.load(directory / MODEL_FILE, env=env, device=device, print_system_info=False)
    model._last_obs = None
    replay = directory / REPLAY_BUFFER_FILE
    if isinstance(model, OffPolicyAlgorithm) and replay.exists():
        model.load_replay_buffer(replay)
        assert model.replay_buffer is not None
        model.replay_buffer.device = model.device  # it was saved with the old run's device
    return model


def refill_replay_buffer(config: TrainConfig, model: BaseAlgorithm, directory: Path) -> int | None:
    """An off-policy model resumed from a checkpoint with no replay buffer waits
    the config's ``learning_starts`` steps more before it learns, as when it
    started, rather than train at once on its first few transitions. Returns
    those steps (None: nothing to wait for)."""
    if not isinstance(model, OffPolicyAlgorithm) or (directory / REPLAY_BUFFER_FILE).exists():
        return None
    default = inspect.signature(type(model).__init__).parameters["learning_starts"].default
    wait = int(config.algo.hyperparams.get("learning_starts", default))
    model.learning_starts = model.num_timesteps + wait
    return wait


def saved_spaces(directory: Path) -> tuple[Any, Any]:
    """The observation and action spaces of the model saved in ``directory``.

    Raises:
        CheckpointError: the model does not load (saved by other versions of the
            libraries, whose spaces do not unpickle here).
    """
    try:
        data, _, _ = load_from_zip_file(directory / MODEL_FILE, device="cpu")
        if data is None:
            raise ValueError("it holds no data")
        return data["observation_space"], data["action_space"]
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        raise CheckpointError(
            f"{directory / MODEL_FILE} does not load ({type(exc).__name__}: {exc}): was it "
            "saved by another version of stable-baselines3, Gymnasium or PyTorch? Train with "
            f"those, or move {directory} out of the run folder to go on from the checkpoint "
            "before it"
        ) from None


def save_model_files(model: BaseAlgorithm, directory: Path, *, replay_buffer: bool) -> None:
    """Write the model, its normalisation statistics and (optionally) replay buffer."""
    model.save(directory / MODEL_FILE)
    normalize = model.get_vec_normalize_env()
    if normalize is not None:
        normalize.save(str(directory / VECNORMALIZE_FILE))
    if replay_buffer and isinstance(model, OffPolicyAlgorithm) and model.replay_buffer:
        model.save_replay_buffer(directory / REPLAY_BUFFER_FILE)


def _init_parameters(cls: type[BaseAlgorithm]) -> set[str]:
    parameters = inspect.signature(cls.__init__).parameters
    return {name for name in parameters if name not in {"self", "_init_setup_model"}} - set(
        _SET_ELSEWHERE
    )


# Values SB3 takes when the model is made but fails on, or learns nothing with, once
# it trains (DQN's batch_size 0 logs a NaN loss at every step).
_RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(
        ["batch_size", "n_epochs", "n_steps", "buffer_size", "target_update_interval"],
        (1, math.inf),
    ),
    **dict.fromkeys(["learning_starts", "vf_coef", "max_grad_norm"], (0, math.inf)),
    **dict.fromkeys(
        [
            "gamma",
            "gae_lambda",
            "tau",
            "exploration_fraction",
            "exploration_initial_eps",
            "exploration_final_eps",
        ],
        (0, 1),
    ),
}


def _convert(cls: type[BaseAlgorithm], key: str, value: Any) -> Any:
    """A hyperparameter as SB3 wants it; ``ValueError`` says what was expected."""
    if key in SCHEDULE_KEYS:
        return _schedule(value)
    if key == "policy_kwargs":
        return _policy_kwargs(value)
    plain = _plain_type(inspect.signature(cls.__init__).parameters[key].annotation)
    if plain is None:
        return value
    kind, optional = plain
    if value is None and optional:
        return None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is bool and isinstance(value, bool):
        return value
    converted: int | float | None = None
    if kind is float and number:
        converted = float(value)
    elif kind is int and isinstance(value, int) and not isinstance(value, bool):
        converted = value
    elif kind is int and isinstance(value, float) and value.is_integer():
        converted = int(value)  # 1e5 in YAML is a float
    if converted is None:
        expected = {bool: "true or false", float: "a number", int: "a whole number"}[kind]
        raise ValueError(f"expected {expected}{' or null' if optional else ''}, got {value!r}")
    low, high = _RANGES.get(key, (-math.inf, math.inf))
    if not low <= converted <= high:
        within = f"from {low:g} to {high:g}" if high < math.inf else f"of at least {low:g}"
        raise ValueError(f"expected a value {within}, got {value!r}")
    return converted


def _plain_type(annotation: Any) -> tuple[type, bool] | None:
    """``(int, float or bool, whether None is allowed)`` when the annotation is one of
    those (``float | None`` too); None for anything else, left to SB3 to check."""
    args = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    members = args or (annotation,)
    optional = type(None) in members
    rest = [member for member in members if member is not type(None)]
    if len(rest) == 1 and rest[0] in (int, float, bool):
        return rest[0], optional
    return None


def _schedule(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            start = float(value[4:])
        except ValueError:
            pass
        else:
            return LinearSchedule(start, 0.0, 1.0)
    raise ValueError(f"expected a number or lin_<number> (e.g. lin_2.5e-4), got {value!r}")


def _check_net_arch(net_arch: Any) -> None:
    """Layer sizes of at least 1 (PyTorch's own error for 0 or -5 names no key)."""
    layers = net_arch.values() if isinstance(net_arch, dict) else [net_arch]
    for sizes in layers:
        if isinstance(sizes, list):
            for size in sizes:
                if isinstance(size, int) and not isinstance(size, bool) and size < 1:
                    raise ValueError(f"net_arch: a layer of {size} units; layers have 1 or more")


def _policy_kwargs(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping such as {{net_arch: [64, 64]}}, got {value!r}")
    kwargs = dict(value)
    if "net_arch" in kwargs:
        _check_net_arch(kwargs["net_arch"])
    for key, table in (("activation_fn", _ACTIVATIONS), ("optimizer_class", _OPTIMIZERS)):
        if key in kwargs:
            name = kwargs[key]
            if not isinstance(name, str) or name not in table:
                raise ValueError(
                    f"{key}: unknown {name!r}{did_you_mean(str(name), table)}; "
                    f"known: {', '.join(table)}"
                )
            kwargs[key] = table[name]
    return kwargs
