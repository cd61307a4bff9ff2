"""Which environments the envapi serves, and how a session makes one."""

from __future__ import annotations

import importlib.util
import inspect
import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote

import gymnasium as gym
import numpy as np

from netgym.errors import (
    InvalidRequestError,
    NetgymError,
    ServerUnavailableError,
    UnknownEnvError,
)
from netgym_envapi.wrappers import WrapperSpec, apply_wrappers, make_kwargs_for

log = logging.getLogger("netgym.envapi.catalog")

# Entry points we serve: the Gymnasium classics and every ALE game. Others in the
# registry (jax-based, MuJoCo...) need packages the image does not carry.
_FAMILIES = {
    "gymnasium.envs.classic_control": "classic_control",
    "gymnasium.envs.toy_text": "toy_text",
    "gymnasium.envs.box2d": "box2d",
    "ale_py": "atari",
}


_custom_modules: list[str] = []
EMULATOR_PREFIX = "netgym/"
EMULATOR_READ_EVERY_S = 5.0
NOT_READ_YET = "no answer yet to this envapi's first request for its games"


@dataclass(frozen=True)
class EmulatorGames:
    """What the emulator service said last: env id -> game name, or why it did not answer."""

    games: dict[str, str]
    error: str | None
    read_at: float
    max_instances: int | None = None  # FCEUX instances it runs at once (one per env)


class _EmulatorCatalog:
    """The emulator service's games, re-read at most every 5 s (sooner for an id not
    among them), by one thread at a time.

    REST handlers ask from worker threads; one read runs at a time, so a hung
    emulator service holds one thread, not one per request.
    """

    def __init__(self) -> None:
        self.url: str | None = None
        self.instance_idle_timeout_s: float | None = None
        self.last = EmulatorGames({}, NOT_READ_YET, -math.inf)
        self._reading = threading.Lock()

    def serve(self, url: str | None, instance_idle_timeout_s: float | None = None) -> None:
        self.url = url.rstrip("/") if url else None
        self.instance_idle_timeout_s = instance_idle_timeout_s
        self.last = EmulatorGames({}, NOT_READ_YET, -math.inf)

    def current(self, wait: bool = True, max_age_s: float = EMULATOR_READ_EVERY_S) -> EmulatorGames:
        """The games, read again when older than ``max_age_s``; without ``wait``, a read
        already under way is not waited for (the previous answer is returned)."""
        if (
            self.url is not None
            and self._older_than(max_age_s)
            and self._reading.acquire(blocking=wait)
        ):
            try:
                if self._older_than(max_age_s):
                    self.last = self._read(self.url)
            finally:
                self._reading.release()
        return self.last

    def _older_than(self, max_age_s: float) -> bool:
        return time.monotonic() - self.last.read_at > max_age_s

    @staticmethod
    def _read(url: str) -> EmulatorGames:
        from netgym.client.rest import EMULATOR, RestClient

        try:
            reply = RestClient(url, None, 10, EMULATOR).call("GET", "/v1/games")
            games = {g["env_id"]: g["name"] for g in reply["games"]}
            limit = reply.get("max_instances")  # absent from older services
            if not isinstance(limit, int) or isinstance(limit, bool):
                limit = None
            return EmulatorGames(games, None, time.monotonic(), limit)
        except NetgymError as exc:
            error = exc.message
        except (KeyError, TypeError, ValueError) as exc:
            error = f"the emulator service at {url} sent a game list this envapi cannot read: "
            error += repr(exc)
        log.warning("the emulator service at %s does not answer: %s", url, error)
        return EmulatorGames({}, error, time.monotonic())


_emulator = _EmulatorCatalog()


def serve_emulator(url: str | None, instance_idle_timeout_s: float | None = None) -> None:
    """Also serve every game the emulator service at ``url`` has (None: none); its
    instances wait for their env's next request at least ``instance_idle_timeout_s``
    (None: the service's own setting)."""
    _emulator.serve(url, instance_idle_timeout_s)


def _emulator_games() -> dict[str, str]:
    """Env id -> game name, from the emulator service (re-read at most every 5 s)."""
    return _emulator.current().games


def _recent_games() -> dict[str, str]:
    """The games read again now (at most every 0.5 s), so that one added or fixed
    since the last read is served at once; not while the service fails to answer,
    and never waiting for a read already under way."""
    if _emulator.last.error is not None:
        return {}
    return _emulator.current(wait=False, max_age_s=0.5).games


def emulator_instance_limit() -> int | None:
    """How many instances the emulator service runs at once, as it said last (None
    when it has not said)."""
    return _emulator.last.max_instances


def emulator_status() -> str | None:
    """Whether the emulator service answers, for /v1/health; None when none is configured.

    It does not wait for a read that another request has under way.
    """
    if _emulator.url is None:
        return None
    last = _emulator.current(wait=False)
    if last.error is not None:
        return f"unreachable: {last.error}"
    return f"ok: {len(last.games)} games"


def serve_modules(modules: list[str]) -> None:
    """Also serve every env that these modules register with Gymnasium when imported.

    Raises:
        InvalidRequestError: when a module cannot be imported.
    """
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise InvalidRequestError(
                f"cannot import env module {module!r} (NETGYM_ENV_MODULES): {exc}"
            ) from exc
        if module not in _custom_modules:
            _custom_modules.append(module)


@dataclass(frozen=True)
class EnvEntry:
    """One env id the service offers."""

    env_id: str
    family: str


def _family(entry_point: Any) -> str | None:
    if callable(entry_point):  # gym.register(id, entry_point=MyEnv): where it lives
        entry_point = f"{entry_point.__module__}:{getattr(entry_point, '__qualname__', '')}"
    if not isinstance(entry_point, str):
        return None
    if any(
        entry_point.startswith(module + ":") or entry_point.startswith(module + ".")
        for module in _custom_modules
    ):
        return "custom"
    for prefix, family in _FAMILIES.items():
        if entry_point.startswith(prefix):
            if family == "box2d" and importlib.util.find_spec("Box2D") is None:
                return None
            return family
    return None


@cache
def register_ale() -> None:
    """Register ale-py's envs with Gymnasium (once; call it before any thread asks)."""
    if importlib.util.find_spec("ale_py") is not None:
        import ale_py

        gym.register_envs(ale_py)
        # Its warnings and errors, not the banner that each new env prints.
        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Warning)


def list_envs() -> list[EnvEntry]:
    """Every env id served, sorted."""
    register_ale()
    entries = []
    for env_id, spec in gym.registry.items():
        family = _family(spec.entry_point)
        if family is not None:
            entries.append(EnvEntry(env_id, family))
    entries += [EnvEntry(env_id, "emulator") for env_id in _emulator_games()]
    return sorted(entries, key=lambda e: e.env_id)


def find_env(env_id: str) -> EnvEntry:
    """The entry of an env id.

    Raises:
        UnknownEnvError: with close matches, when the id is not served.
    """
    if env_id.startswith(EMULATOR_PREFIX):
        if env_id in _emulator_games() or env_id in _recent_games():
            return EnvEntry(env_id, "emulator")
        # Added since a read too recent for _recent_games to repeat: read them again.
        if _has_game(env_id) and env_id in _emulator.current(max_age_s=0.0).games:
            return EnvEntry(env_id, "emulator")
    register_ale()
    spec = gym.registry.get(env_id)
    family = _family(spec.entry_point) if spec is not None else None
    if family is None:
        import difflib

        # By the names alone: every netgym/...-v0 looks like every other to difflib.
        by_name: dict[str, list[str]] = {}
        for entry in list_envs():
            by_name.setdefault(_bare_name(entry.env_id), []).append(entry.env_id)
        names = difflib.get_close_matches(_bare_name(env_id), list(by_name), n=3)
        # The id nearest in full first, of ids of one name (CartPole-v1 for CartPol-v1).
        close = [
            other
            for name in names
            for other in sorted(
                by_name[name],
                key=lambda other: -difflib.SequenceMatcher(None, env_id, other).ratio(),
            )
        ][:3]
        hint = (
            f"; did you mean {', '.join(close)}?"
            if close
            else "; netgym.list_envs() (GET /v1/envs) lists them"
        )
        raise UnknownEnvError(f"no env {env_id!r} is served here{hint}", details={"env_id": env_id})
    return EnvEntry(env_id, family)


def _bare_name(env_id: str) -> str:
    """``Pong`` of ``ALE/Pong-v5``: an id less its namespace and version."""
    return re.sub(r"-v\d+$", "", env_id.rpartition("/")[2])


def _has_game(env_id: str) -> bool:
    """Whether the emulator service has the game of a ``netgym/`` id; if not, raise why,
    when it can say.

    Raises:
        ServerUnavailableError: the emulator service does not answer (a retry may help).
        UnknownEnvError: there is no emulator service, or its folder of that
            game has a problem (named).
    """
    url = _emulator.url
    if url is None:
        raise UnknownEnvError(
            f"no env {env_id!r} is served here: {EMULATOR_PREFIX}* ids are games of an "
            "emulator service, and this envapi has none; start one (`netgym-emulator`) "
            "and set NETGYM_EMULATOR_URL",
            details={"env_id": env_id},
        )
    error = _emulator.last.error
    if error is not None:  # read again now, if a second old: a service back serves at once
        error = _emulator.current(wait=False, max_age_s=1.0).error
    if error is not None:
        raise ServerUnavailableError(
            f"{env_id} would be a game of the emulator service, which does not answer: {error}",
            details={"env_id": env_id},
        )
    from netgym.client.rest import EMULATOR, RestClient

    name = env_id.removeprefix(EMULATOR_PREFIX).rsplit("-v", 1)[0]
    try:  # the service finds the game's folder and its problem, if it has one
        RestClient(url, None, 10, EMULATOR).call("GET", f"/v1/games/{quote(name, safe='')}")
    except NetgymError as exc:
        if exc.details.get("problem"):
            raise UnknownEnvError(
                f"{env_id} cannot be served: {exc.details['problem']}",
                details={"env_id": env_id},
            ) from None
        return False
    return True


def action_meanings(env: gym.Env[Any, Any]) -> list[str] | None:
    """What each action does, where the env says (ALE games and NES games do): one
    name per action of a Discrete space, or per element of a MultiBinary one."""
    meanings = getattr(env.unwrapped, "get_action_meanings", None)
    space = env.action_space
    if meanings is None or not isinstance(space, gym.spaces.Discrete | gym.spaces.MultiBinary):
        return None
    try:
        names = meanings()
    except Exception:  # an env's own method, with arguments of its own, say: no names
        return None
    count = space.n if isinstance(space, gym.spaces.Discrete) else int(np.prod(space.shape))
    if not isinstance(names, list | tuple) or len(names) != count:
        return None  # ALE's continuous mode names 18 actions for a Box, say
    return [str(name) for name in names]


def env_revision(env: gym.Env[Any, Any]) -> str | None:
    """The version of what the env plays, where it has one that can change while the
    envapi runs (an NES game, whose folder may be edited); None for the others."""
    revision = getattr(env.unwrapped, "revision", None)
    return revision if isinstance(revision, str) else None


def episode_spec(env: gym.Env[Any, Any]) -> dict[str, Any]:
    """What a local ``env.spec`` would say of the episodes, its wrappers included.

    An NES game has no Gymnasium spec: its limit is the game's own, or a
    ``time_limit`` wrapper's where that is shorter.
    """
    if env.spec is not None:
        return {
            "max_episode_steps": env.spec.max_episode_steps,
            "reward_threshold": env.spec.reward_threshold,
        }
    limits = []
    layer = env
    while isinstance(layer, gym.Wrapper):
        if isinstance(layer, gym.wrappers.TimeLimit):
            limits.append(layer.get_wrapper_attr("_max_episode_steps"))
        layer = layer.env
    own = getattr(layer, "max_episode_steps", None)
    if isinstance(own, int):
        limits.append(own)
    return {"max_episode_steps": min(limits, default=None), "reward_threshold": None}


def make_env(
    env_id: str, env_kwargs: dict[str, Any], wrappers: list[WrapperSpec]
) -> gym.Env[Any, Any]:
    """Make one env with its server-side wrappers.

    Raises:
        UnknownEnvError: when the id is not served.
        InvalidRequestError: when gymnasium rejects the keyword arguments, or
            they ask for a render mode.
    """
    if "render_mode" in env_kwargs:
        # "human" would open a window on the server each step; the others would
        # render frames that nothing sends.
        raise InvalidRequestError(
            f"env_kwargs render_mode={env_kwargs['render_mode']!r}: the envapi's envs run on "
            "a server with no screen and send observations, not renderings; leave "
            "render_mode out (the observations of Atari and NES games are their screens)",
            details={"render_mode": env_kwargs["render_mode"]},
        )
    family = find_env(env_id).family
    # An env of NETGYM_ENV_MODULES may be an ALE game: AtariPreprocessing says if not.
    if family not in ("atari", "custom") and any(spec.name == "atari" for spec in wrappers):
        raise InvalidRequestError(
            f"wrapper 'atari' is for ALE games (ALE/...); {env_id} is "
            + (
                "an NES game, whose frames per step its manifest sets"
                if family == "emulator"
                else f"a {family} env"
            )
            + " (the other wrappers work with it)"
        )
    if family == "emulator":
        from netgym.emulator.env import EmulatorEnv

        # The envapi's own, not a client's to set.
        internal = ("render_mode", "token", "idle_timeout_s")
        taken = [p for p in inspect.signature(EmulatorEnv).parameters if p not in internal][2:]
        unknown = sorted(set(env_kwargs) - set(taken))
        if unknown:
            raise InvalidRequestError(
                f"{env_id} takes no env_kwargs {', '.join(map(repr, unknown))}; it takes "
                + ", ".join(taken)
            )
        game: gym.Env[Any, Any] = EmulatorEnv(
            _emulator_games()[env_id],
            _emulator.url or "",
            idle_timeout_s=_emulator.instance_idle_timeout_s,
            **env_kwargs,
        )
        return apply_wrappers(game, wrappers)
    kwargs = {**make_kwargs_for(wrappers), **env_kwargs}
    try:
        env = gym.make(env_id, **kwargs)
    except TypeError as exc:
        raise InvalidRequestError(
            f"gymnasium.make({env_id!r}) rejected env_kwargs {kwargs}: {exc}"
        ) from exc
    return apply_wrappers(env, wrappers)
