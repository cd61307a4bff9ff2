"""One contract for vector envs, on Gymnasium's SyncVectorEnv and on RemoteVectorEnv.

The remote env must match Gymnasium's own vector env step for step: the same
observations, rewards, terminations, truncations and final observations, in
every autoreset mode.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import netgym
from netgym.errors import InvalidRequestError, SessionStateError

MODES = [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED]


def run(envs: gym.vector.VectorEnv, steps: int, seed: int) -> list[tuple[Any, ...]]:
    """Step with a fixed action sequence, resetting done envs by mask when autoreset is off."""
    rng = np.random.default_rng(seed)
    trace: list[tuple[Any, ...]] = [envs.reset(seed=seed)[0]]
    for _ in range(steps):
        actions = rng.integers(0, 2, envs.num_envs)
        obs, rewards, terminations, truncations, info = envs.step(actions)
        finals = [info["final_obs"][i] for i in np.flatnonzero(info.get("_final_obs", []))]
        trace.append((obs, rewards, terminations, truncations, finals))
        done = terminations | truncations
        if envs.metadata["autoreset_mode"] == AutoresetMode.DISABLED and done.any():
            obs, _ = envs.reset(options={"reset_mask": done})
            trace.append((obs,))
    return trace


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
def test_remote_matches_sync_vector_env(mode: AutoresetMode, remote_kwargs: dict) -> None:
    local = SyncVectorEnv([partial(gym.make, "CartPole-v1") for _ in range(3)], autoreset_mode=mode)
    remote = netgym.make_vec("CartPole-v1", 3, autoreset_mode=mode, **remote_kwargs)
    try:
        assert remote.single_observation_space == local.single_observation_space
        assert remote.observation_space == local.observation_space
        assert remote.action_space == local.action_space
        expected, got = run(local, 120, seed=7), run(remote, 120, seed=7)
        assert len(expected) == len(got)
        for e, g in zip(expected, got, strict=True):
            for a, b in zip(e, g, strict=True):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
                assert np.asarray(a).dtype == np.asarray(b).dtype
    finally:
        local.close()
        remote.close()


def test_spec_describes_each_env_as_make_vec_does(remote_kwargs: dict) -> None:
    local = gym.make_vec("CartPole-v1", 2)
    wrappers = [{"name": "time_limit", "kwargs": {"max_episode_steps": 50}}]
    remote = netgym.make_vec("CartPole-v1", 2, wrappers=wrappers, **remote_kwargs)
    try:
        assert local.spec is not None and remote.spec is not None
        assert remote.spec.id == local.spec.id
        assert remote.spec.max_episode_steps == 50
        one = gym.make(remote.spec)  # one more env like them, on the same envapi
        try:
            assert one.observation_space == remote.single_observation_space
        finally:
            one.close()
    finally:
        local.close()
        remote.close()


def test_step_before_reset_is_a_clear_error(remote_kwargs: dict) -> None:
    envs = netgym.make_vec("CartPole-v1", 2, **remote_kwargs)
    with envs, pytest.raises(SessionStateError, match="reset"):
        envs.step(np.zeros(2, dtype=np.int64))


def test_step_wait_without_step_async_is_a_clear_error(remote_kwargs: dict) -> None:
    envs = netgym.make_vec("CartPole-v1", 2, **remote_kwargs)
    with envs:
        envs.reset(seed=0)
        with pytest.raises(SessionStateError, match="step_wait"):
            envs.step_wait()
        envs.step_async(np.zeros(2, dtype=np.int64))
        with pytest.raises(SessionStateError, match="step_wait"):
            envs.step_async(np.zeros(2, dtype=np.int64))
        envs.step_wait()


def test_atari_wrappers_shrink_frames_on_the_server(remote_kwargs: dict) -> None:
    envs = netgym.make_vec(
        "ALE/Pong-v5",
        2,
        wrappers=["atari", {"name": "frame_stack", "kwargs": {"stack_size": 4}}],
        **remote_kwargs,
    )
    with envs:
        obs, _ = envs.reset(seed=0)
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
        obs, *_ = envs.step(envs.action_space.sample())
        assert obs.shape == (2, 4, 84, 84)


def test_dict_info_and_episode_statistics(remote_kwargs: dict) -> None:
    envs = netgym.make_vec(
        "CartPole-v1",
        2,
        wrappers=[{"name": "time_limit", "kwargs": {"max_episode_steps": 5}}, "episode_statistics"],
        **remote_kwargs,
    )
    with envs:
        envs.reset(seed=0)
        for _ in range(5):
            _, _, _, truncations, info = envs.step(np.zeros(2, dtype=np.int64))
        assert truncations.all()
        assert info["final_info"]["episode"]["l"].tolist() == [5, 5]


def test_refused_step_with_autoreset_disabled_moves_no_env(remote_kwargs: dict) -> None:
    """Env 0 is done and not reset: the step is refused before env 1 (another slice) moves."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("the server puts 2 envs in 2 slices only with 2 cores or more")
    mode = AutoresetMode.DISABLED
    local = SyncVectorEnv(
        [partial(gym.make, "CartPole-v1", max_episode_steps=3) for _ in range(2)],
        autoreset_mode=mode,
    )
    remote = netgym.make_vec(
        "CartPole-v1",
        2,
        autoreset_mode=mode,
        wrappers=[{"name": "time_limit", "kwargs": {"max_episode_steps": 3}}],
        **remote_kwargs,
    )
    try:
        traces = []
        for envs, refused in ((local, AssertionError), (remote, SessionStateError)):
            envs.reset(seed=5)
            for _ in range(3):
                _, _, _, truncations, _ = envs.step(np.array([0, 1]))
            assert truncations.all()
            envs.reset(options={"reset_mask": np.array([False, True])})
            with pytest.raises(refused):
                envs.step(np.array([0, 1]))
            envs.reset(options={"reset_mask": np.array([True, False])})
            traces.append(envs.step(np.array([1, 0]))[:4])
        for expected, got in zip(*traces, strict=True):
            np.testing.assert_array_equal(expected, got)
    finally:
        local.close()
        remote.close()


@pytest.mark.parametrize(
    "options",
    [None, {}, {"level": 2}, {"reset_mask": [True, False]}, {"reset_mask": [True, True], "x": 1}],
    ids=["none", "empty", "one-key", "mask-only", "mask-and-key"],
)
def test_reset_passes_options_to_the_envs_as_gymnasium_does(
    options: dict[str, Any] | None, remote_kwargs: dict
) -> None:
    import tests.fault_envs  # noqa: F401  (registers the env for the local side)

    mode = AutoresetMode.DISABLED
    env_id = "netgym-test/EchoOptions-v0"
    local = SyncVectorEnv([partial(gym.make, env_id) for _ in range(2)], autoreset_mode=mode)
    remote = netgym.make_vec(env_id, 2, autoreset_mode=mode, **remote_kwargs)
    try:
        for envs in (local, remote):
            envs.reset(seed=0)
        given = (
            None
            if options is None
            else {
                key: np.array(value) if key == "reset_mask" else value
                for key, value in options.items()
            }
        )
        _, expected = local.reset(options=None if given is None else dict(given))
        _, got = remote.reset(options=given)
        np.testing.assert_array_equal(got["options"], expected["options"])
        np.testing.assert_array_equal(got["_options"], expected["_options"])
    finally:
        local.close()
        remote.close()


@pytest.mark.parametrize(
    ("mask", "refusal"),
    [(np.zeros(2, dtype=np.bool_), "selects no env"), ([[True], [True, False]], "inhomogeneous")],
    ids=["none-selected", "ragged"],
)
def test_a_wrong_reset_mask_is_refused_and_the_session_goes_on(
    remote_kwargs: dict, mask: object, refusal: str
) -> None:
    with netgym.make_vec(
        "CartPole-v1", 2, autoreset_mode=AutoresetMode.DISABLED, **remote_kwargs
    ) as envs:
        envs.reset(seed=0)
        with pytest.raises(InvalidRequestError, match=refusal):
            envs.reset(options={"reset_mask": mask})
        envs.step(np.array([0, 1]))


@pytest.mark.parametrize(
    ("seed", "same_as"),
    [
        (np.int64(3), 3),
        (np.uint32(3), 3),
        (np.array([3, 9]), [3, 9]),
        ((3, None), [3, None]),
        (range(3, 5), [3, 4]),
    ],
    ids=["np-int64", "np-uint32", "array", "tuple", "range"],
)
def test_reset_takes_numpy_seeds_and_any_sequence(
    seed: object, same_as: object, remote_kwargs: dict
) -> None:
    with netgym.make_vec("CartPole-v1", 2, **remote_kwargs) as envs:
        expected, _ = envs.reset(seed=same_as)
        got, _ = envs.reset(seed=seed)
        if None in np.atleast_1d(np.asarray(same_as, dtype=object)):
            np.testing.assert_array_equal(expected[0], got[0])  # the unseeded env differs
        else:
            np.testing.assert_array_equal(expected, got)
