"""The training config: a YAML file, checked into typed models before anything runs.

A config names the env and its server-side wrappers, the algorithm with its
hyperparameters (rl-baselines3-zoo names and schedules, e.g.
``learning_rate: lin_1e-3``), the length of the run, the device, and the
evaluation and checkpoint cadence. Every mistake becomes a ``ConfigError``
naming the dotted key, so that a typo fails in the first second of a run, not
after an hour of training.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from netgym_agent.algorithms import check_hyperparams
from netgym_agent.errors import ConfigError, did_you_mean

# Compose's agent trains configs/$NETGYM_AGENT_CONFIG (compose.yaml).
COMPOSE_CONFIG_VARIABLE = "NETGYM_AGENT_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvConfig(_Section):
    """Which env to train on and how the server should wrap it."""

    id: str = Field(min_length=1)
    num_envs: int = Field(default=8, ge=1)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    wrappers: list[str | dict[str, Any]] = Field(default_factory=list)
    # How long a lost session is tried again before the run stops with a checkpoint.
    reconnect_timeout_s: float = Field(default=120.0, gt=0, le=1_000_000)

    @field_validator("wrappers")
    @classmethod
    def _wrapper_shape(cls, value: list[str | dict[str, Any]]) -> list[str | dict[str, Any]]:
        for index, item in enumerate(value):
            if isinstance(item, dict) and (
                not isinstance(item.get("name"), str)
                or set(item) - {"name", "kwargs"}
                or not isinstance(item.get("kwargs", {}), dict)
            ):
                raise ValueError(
                    f"item {index} is {item!r}, but a wrapper is a name "
                    "or {name: ..., kwargs: {...}}"
                )
        return value


class AlgoConfig(_Section):
    """The SB3 algorithm, its policy and its hyperparameters (zoo names)."""

    name: Literal["ppo", "a2c", "dqn"]
    policy: str = "MlpPolicy"
    hyperparams: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class NormalizeConfig(_Section):
    """SB3's ``VecNormalize``: running mean/std of observations and returns."""

    norm_obs: bool = True
    norm_reward: bool = True
    clip_obs: float = Field(default=10.0, gt=0)
    clip_reward: float = Field(default=10.0, gt=0)


class EvalConfig(_Section):
    """Evaluation on a separate session, deterministic by default."""

    every_steps: int = Field(default=10_000, ge=0)
    episodes: int = Field(default=10, ge=1)
    num_envs: int = Field(default=5, ge=1)
    deterministic: bool = True
    stop_at_mean_return: float | None = None

    @model_validator(mode="after")
    def _goal_needs_evaluations(self) -> EvalConfig:
        if self.stop_at_mean_return is not None and self.every_steps == 0:
            raise ValueError(
                "stop_at_mean_return is checked at evaluations, and every_steps: 0 runs "
                "none: set every_steps above 0, or stop_at_mean_return: null"
            )
        return self


class CheckpointConfig(_Section):
    """How often to checkpoint, how many to keep, and what goes in them."""

    every_steps: int = Field(default=10_000, ge=0)
    keep: int = Field(default=3, ge=1)
    save_replay_buffer: bool = True


class TrainConfig(_Section):
    """One training run, as read from YAML and as saved into the run folder."""

    env: EnvConfig
    algo: AlgoConfig
    total_timesteps: int = Field(ge=1)
    seed: int = Field(default=0, ge=0, lt=2**32)  # what numpy and SB3 take
    device: str = "auto"
    require_gpu: bool = False
    torch_threads: int | None = Field(default=None, ge=1)
    normalize: NormalizeConfig | None = None
    eval: EvalConfig = Field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    progress_every_s: float = Field(default=5.0, gt=0)

    @field_validator("normalize", mode="before")
    @classmethod
    def _normalize_flag(cls, value: Any) -> Any:
        if value is True:
            return {}
        return None if value is False else value

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
            raise ValueError("must be auto, cpu, cuda or cuda:N")
        return value


class _Loader(yaml.SafeLoader):
    """PyYAML, but ``1e-3`` and ``1e5`` are floats as in YAML 1.2, not strings, and a
    key set twice in one mapping is an error, not the last one winning in silence."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # <<: an anchor's keys, on purpose
                continue
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            with contextlib.suppress(TypeError):  # a key that cannot be one: said below
                if key in lines:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"{key!r} is set twice in one mapping (lines {lines[key]} and {line}): "
                        "keep one",
                        key_node.start_mark,
                    )
                lines[key] = line
        return super().construct_mapping(node, deep)


class _Dumper(yaml.SafeDumper):
    """Quotes the strings ``_Loader`` would read as floats (``"1e5"``), so they stay strings."""


_YAML12_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
for _yaml_class in (_Loader, _Dumper):
    _yaml_class.add_implicit_resolver(
        "tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+0123456789.")
    )


def parse_yaml(text: str, source: str) -> Any:
    """YAML text as Python values, with 1e-3 read as a number.

    Raises:
        ConfigError: for text that is not YAML, naming ``source`` and the line.
    """
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from None


def load_config(path: Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML config, apply ``key=value`` overrides, and check everything.

    Raises:
        ConfigError: naming the file and the key that is wrong.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"cannot read config {path}: it is not text in UTF-8 (byte {exc.start} is "
            f"{exc.object[exc.start : exc.start + 1]!r}); a config is a YAML file"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read config {path}: {exc.strerror or exc}{_configs_beside(path)}"
            f"{_run_folder_hint(path)}{_compose_config_hint(path)}"
        ) from None
    return config_from_dict(parse_yaml(text, str(path)), source=str(path), overrides=overrides)


def _run_folder_hint(path: Path) -> str:
    """For a run folder given as the config: how to go on with that run."""
    if not (path / "config.yaml").is_file():
        return ""
    return f"; it is a run folder: to go on with it, netgym-train train --run-dir {path} --resume"


def _compose_config_hint(path: Path) -> str:
    """For Compose's agent, whose config is ``configs/$NETGYM_AGENT_CONFIG``: that the
    variable names a file of agents/configs/, should it hold a path."""
    named = os.environ.get(COMPOSE_CONFIG_VARIABLE, "")
    if "/" not in named or not str(path).endswith(named):
        return ""
    return (
        f"; {COMPOSE_CONFIG_VARIABLE} takes the name of a file in agents/configs/ "
        f"(e.g. {Path(named).name}), not a path"
    )


def _configs_beside(path: Path) -> str:
    """For a config that is not there: the configs in its folder, the closest first."""
    try:
        names = sorted(p.name for p in path.parent.glob("*.y*ml") if p.is_file())
    except OSError:
        return ""
    if not names or path.exists():
        return ""
    return f"; {path.parent} has {', '.join(names)}{did_you_mean(path.name, names)}"


def config_from_dict(
    raw: Any, *, source: str = "config", overrides: Sequence[str] = ()
) -> TrainConfig:
    """A checked ``TrainConfig`` from plain data (a parsed YAML document).

    Raises:
        ConfigError: naming ``source`` and the dotted key that is wrong.
    """
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else f"a {type(raw).__name__}"
        raise ConfigError(
            f"{source}: a config is a mapping of keys (env:, algo:, total_timesteps: ...), "
            f"got {got}; agents/configs/ has examples"
        )
    data = _deep_copy(raw)
    for override in overrides:
        apply_override(data, override)
    if overrides:  # the key at fault may be one they set
        source += "".join(f" --set {override}" for override in overrides)
    try:
        config = TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source)) from None
    check_hyperparams(config.algo, source)
    return config


def config_to_yaml(config: TrainConfig, header: str = "") -> str:
    """The config as YAML that ``load_config`` reads back to an equal config."""
    body = yaml.dump(config.model_dump(mode="json"), Dumper=_Dumper, sort_keys=False)
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + body


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set ``a.b.c=value`` in nested dicts; the value is read as YAML (``true``, ``1e5``).

    Raises:
        ConfigError: for a malformed override or a path through a non-mapping.
    """
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set takes key=value (e.g. seed=3), got {override!r}")
    parts = key.strip().split(".")
    node = data
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if child is None or child is True:  # `normalize: true` is the section of defaults
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(f"--set {override!r}: {where} is {child!r}, not a mapping")
        node = child
    node[parts[-1]] = parse_yaml(text, f"--set {override!r}")


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _explain(exc: ValidationError, source: str) -> str:
    lines = [f"{source} is not a valid training config:"]
    for error in exc.errors():
        loc = [part for part in error["loc"] if not _is_union_tag(part)]
        key = _dotted(loc)
        if error["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key{_suggest(loc)}")
        elif error["type"] == "missing":
            lines.append(f"  {key}: required, but missing")
        else:
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"  {key}: {message} (got {error.get('input')!r})")
    return "\n".join(dict.fromkeys(lines))


def _is_union_tag(part: Any) -> bool:
    """Pydantic names the member of a union it tried (``str``, ``NormalizeConfig``)."""
    return isinstance(part, str) and (part in _model_names() or part in {"str", "dict[str,any]"})


@functools.cache
def _model_names() -> frozenset[str]:
    """This module's config models, by name."""
    return frozenset(
        name
        for name, value in globals().items()
        if isinstance(value, type) and issubclass(value, BaseModel)
    )


def _dotted(loc: Iterable[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(top level)"


def _suggest(loc: list[Any]) -> str:
    if not loc:
        return ""
    model: type[BaseModel] = TrainConfig
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        nested = [
            t
            for t in (getattr(annotation, "__args__", None) or (annotation,))
            if isinstance(t, type) and issubclass(t, BaseModel)
        ]
        if not nested:
            return ""
        model = nested[0]
    known = list(model.model_fields)
    return f"{did_you_mean(str(loc[-1]), known)}; known: {', '.join(known)}"
