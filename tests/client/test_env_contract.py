"""One contract for a single env, run on a local Gymnasium env and on a remote one."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import netgym
from netgym.errors import NotPicklableError
from netgym_envapi.catalog import make_env
from netgym_envapi.wrappers import parse_wrappers

ENVS = {
    "cartpole": ("CartPole-v1", []),
    "pong": ("ALE/Pong-v5", []),
    "pong-atari-stack": (
        "ALE/Pong-v5",
        ["atari", {"name": "frame_stack", "kwargs": {"stack_size": 4}}],
    ),
    "frozenlake": ("FrozenLake-v1", []),
    "blackjack-tuple-obs": ("Blackjack-v1", []),
    "cartpole-time-limit": (
        "CartPole-v1",
        [{"name": "time_limit", "kwargs": {"max_episode_steps": 50}}],
    ),
}


def assert_same(expected: Any, got: Any) -> None:
    """Equal values; scalars compare by value (an env's int reward arrives as a float)."""
    if isinstance(expected, dict):
        assert expected.keys() == got.keys()
        for key in expected:
            assert_same(expected[key], got[key])
    elif isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == len(expected)
        for a, b in zip(expected, got, strict=True):
            assert_same(a, b)
    else:
        a, b = np.asarray(expected), np.asarray(got)
        assert a.shape == b.shape
        assert a.shape == () or a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def local_env(env_id: str, wrappers: list[Any]) -> gym.Env:
    return make_env(env_id, {}, parse_wrappers(wrappers))


@pytest.fixture(params=["local", "remote"])
def backend(
    request: pytest.FixtureRequest, remote_kwargs: dict
) -> Iterator[Callable[..., gym.Env]]:
    envs: list[gym.Env] = []

    def make(env_id: str, wrappers: list[Any]) -> gym.Env:
        if request.param == "local":
            env = local_env(env_id, wrappers)
        else:
            env = netgym.make(env_id, wrappers=wrappers, **remote_kwargs)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.close()


@pytest.mark.parametrize("name", ["cartpole", "pong", "pong-atari-stack", "blackjack-tuple-obs"])
def test_gymnasium_check_env(backend: Callable[..., gym.Env], name: str) -> None:
    env = backend(*ENVS[name])
    check_env(env, skip_render_check=True)


@pytest.mark.parametrize("name", ["cartpole", "pong-atari-stack", "frozenlake"])
def test_sb3_check_env(backend: Callable[..., gym.Env], name: str) -> None:
    env = backend(*ENVS[name])
    sb3_check_env(env, warn=False)


@pytest.mark.parametrize(
    ("name", "max_episode_steps", "reward_threshold"),
    [("cartpole", 500, 475.0), ("cartpole-time-limit", 50, 475.0), ("pong", None, None)],
)
def test_spec_gives_the_episode_limit(
    backend: Callable[..., gym.Env],
    name: str,
    max_episode_steps: int | None,
    reward_threshold: float | None,
) -> None:
    env = backend(*ENVS[name])
    assert env.spec is not None
    assert env.spec.max_episode_steps == max_episode_steps
    assert env.spec.reward_threshold == reward_threshold


@pytest.mark.parametrize("name", ["cartpole", "pong", "pong-atari-stack"])
def test_step_types(backend: Callable[..., gym.Env], name: str) -> None:
    env = backend(*ENVS[name])
    obs, info = env.reset(seed=3)
    assert obs in env.observation_space
    assert isinstance(info, dict)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs in env.observation_space
    assert isinstance(reward, float)
    assert isinstance(terminated, bool) and isinstance(truncated, bool)


def test_an_env_keeps_the_action_it_was_given_as_it_was(remote_kwargs: dict) -> None:
    import tests.fault_envs  # noqa: F401  (registers the env for the local side)

    env_id = "netgym-test/KeepsAction-v0"
    for env in (gym.make(env_id), netgym.make(env_id, **remote_kwargs)):
        with env:
            env.reset(seed=0)
            env.step(np.array([1, 1], np.float32))
            previous = env.step(np.array([2, 2], np.float32))[0]
            np.testing.assert_array_equal(previous, [1, 1])


@pytest.mark.parametrize("name", ["cartpole", "pong", "pong-atari-stack", "frozenlake"])
def test_remote_equals_local_for_same_seeds_and_actions(name: str, remote_kwargs: dict) -> None:
    env_id, wrappers = ENVS[name]
    local = local_env(env_id, wrappers)
    remote = netgym.make(env_id, wrappers=wrappers, **remote_kwargs)
    try:
        rng = np.random.default_rng(0)
        for episode_seed in (1, 2):
            local_out = local.reset(seed=episode_seed)
            remote_out = remote.reset(seed=episode_seed)
            assert_same(local_out[0], remote_out[0])
            for _ in range(150):
                action = int(rng.integers(local.action_space.n))
                expected = local.step(action)
                got = remote.step(action)
                for a, b in zip(expected[:4], got[:4], strict=True):
                    assert_same(a, b)
                if expected[2] or expected[3]:
                    break
    finally:
        local.close()
        remote.close()


def python_types(value: Any) -> Any:
    """The types of a value's parts (a numpy array stands as its dtype)."""
    if isinstance(value, dict):
        return {key: python_types(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(python_types(item) for item in value)
    if isinstance(value, np.ndarray):
        return value.dtype
    return type(value)


@pytest.mark.parametrize("name", ["frozenlake", "blackjack-tuple-obs", "pong"])
def test_observations_and_infos_have_the_local_envs_types(name: str, remote_kwargs: dict) -> None:
    """Python ints stay ints (Discrete observations, ALE's ``lives``), so that
    ``json.dumps(info)`` works as it does locally."""
    env_id, wrappers = ENVS[name]
    local = local_env(env_id, wrappers)
    remote = netgym.make(env_id, wrappers=wrappers, **remote_kwargs)
    try:
        for env in (local, remote):
            env.action_space.seed(0)
        got = [(local.reset(seed=4), remote.reset(seed=4))]
        got.append(
            (local.step(local.action_space.sample()), remote.step(remote.action_space.sample()))
        )
        for local_out, remote_out in got:
            obs, info = local_out[0], local_out[-1]
            assert python_types(remote_out[0]) == python_types(obs)
            assert python_types(remote_out[-1]) == python_types(info)
            info = {key: value for key, value in info.items() if key != "seeds"}  # numpy's
            assert json.dumps(info) == json.dumps({key: remote_out[-1][key] for key in info})
    finally:
        local.close()
        remote.close()


def test_remote_env_has_a_spec_that_opens_another_session(remote_kwargs: dict) -> None:
    wrappers = ["atari"]
    env = netgym.make("ALE/Pong-v5", wrappers=wrappers, **remote_kwargs)
    try:
        assert env.spec is not None and env.spec.id == "ALE/Pong-v5"
        assert env.spec.kwargs["wrappers"] == wrappers
        if remote_kwargs["token"]:
            assert remote_kwargs["token"] not in repr(env.spec) + env.spec.pprint(
                disable_print=True, print_all=True
            )
        # Gymnasium cannot write a spec that makes an env by a callable as JSON, and
        # says so: naming the callable, not writing out the token it holds.
        with pytest.raises(ValueError, match="Callable found") as refused:
            env.spec.to_json()
        assert not remote_kwargs["token"] or remote_kwargs["token"] not in str(refused.value)
        again = env.spec.make()  # through gymnasium.make: the token travels unseen
        try:
            assert again.observation_space == env.observation_space
            assert again.unwrapped.session_id != env.session_id  # type: ignore[attr-defined]
            obs, _ = again.reset(seed=1)
            assert_same(env.reset(seed=1)[0], obs)
        finally:
            again.close()
    finally:
        env.close()


def test_a_remote_env_refuses_to_be_pickled_or_copied_saying_why(remote_kwargs: dict) -> None:
    env = netgym.make("CartPole-v1", **remote_kwargs)
    try:
        wrapped = gym.wrappers.TimeLimit(env, 10)
        attempts = [(pickle.dumps, env), (copy.deepcopy, env), (copy.copy, env)]
        attempts += [(pickle.dumps, env.unwrapped._vector), (copy.deepcopy, wrapped)]  # type: ignore[attr-defined]
        for copy_it, what in attempts:
            with pytest.raises(NotPicklableError, match="make it there") as refused:
                copy_it(what)
            assert isinstance(refused.value, TypeError)  # what pickle's own refusals are
        env.reset(seed=0)  # still usable
    finally:
        env.close()
