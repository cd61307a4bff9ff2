"""Plugged-in games through the whole path: client, envapi, emulator service, real FCEUX."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from gymnasium.spaces import MultiBinary
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import netgym
from netgym.client.rest import EMULATOR, RestClient
from netgym.emulator.bridge import BUTTONS
from netgym.emulator.env import EmulatorEnv
from netgym.errors import (
    ConnectionLostError,
    EnvError,
    InvalidRequestError,
    ServerUnavailableError,
    UnknownEnvError,
)
from tests.emulator.conftest import EFP_ROM, FAULT_MANIFEST, PLAIN_SCRIPT, Stack, games_dir
from tests.servers import alive, descendants, run_emulator, run_envapi


def instance_pid(stack: Stack, game: str) -> int:
    instances = httpx.get(f"{stack.emulator_url}/v1/instances").json()["instances"]
    return next(i["pid"] for i in instances if i["game"] == game and i["alive"])


def test_games_are_listed_by_the_envapi(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.envapi.token}"}
    envs = httpx.get(f"{stack.envapi.url}/v1/envs", headers=headers).json()["envs"]
    emulated = {e["env_id"] for e in envs if e["family"] == "emulator"}
    assert {"netgym/Plain-v0", "netgym/LuaError-v0"} <= emulated


def test_the_envapi_says_why_a_game_is_not_served(stack: Stack, tmp_path: Path) -> None:
    with pytest.raises(UnknownEnvError) as caught:
        netgym.make("netgym/Broken-v0", **stack.kwargs)
    assert "netgym/Broken-v0 cannot be served: " in caught.value.message
    assert "missing.nes is missing" in caught.value.message
    with (
        run_envapi(tmp_path, emulator_url="http://127.0.0.1:9") as silent,
        pytest.raises(ServerUnavailableError, match="emulator service, which does not"),
    ):
        netgym.make("netgym/Catch-v0", url=silent.url, token=silent.token)
    with run_envapi(tmp_path) as without, pytest.raises(UnknownEnvError, match="has none"):
        netgym.make("netgym/Catch-v0", url=without.url, token=without.token)


def test_a_game_dropped_in_is_served_by_the_envapi_at_once(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.envapi.token}"}
    httpx.get(f"{stack.envapi.url}/v1/envs", headers=headers)  # the envapi's list is fresh
    folder = stack.games / "dropped-in"
    folder.mkdir()
    try:
        (folder / "game.lua").write_text(PLAIN_SCRIPT)
        (folder / "game.toml").write_text(FAULT_MANIFEST.format(name="DroppedIn", rom=EFP_ROM))
        with netgym.make("netgym/DroppedIn-v0", **stack.kwargs) as env:
            env.reset(seed=0)
        # Edited, it is described as it is now (an NES game's description is not kept).
        described = f"{stack.envapi.url}/v1/envs/netgym/DroppedIn-v0"
        assert httpx.get(described, headers=headers, timeout=60).json()["action_space"]["n"] == 2
        three = FAULT_MANIFEST.replace(
            '"up"] }} ]', '"up"] }}, {{ name = "a", buttons = ["A"] }} ]'
        )
        (folder / "game.toml").write_text(three.format(name="DroppedIn", rom=EFP_ROM))
        assert httpx.get(described, headers=headers, timeout=60).json()["action_space"]["n"] == 3
    finally:
        shutil.rmtree(folder)


def test_plain_game_passes_check_env(stack: Stack) -> None:
    with netgym.make("netgym/Plain-v0", **stack.kwargs) as env:
        assert env.observation_space.shape == (240, 256, 3)
        check_env(env, skip_render_check=True)


def test_escape_from_pong_plays_through_the_envapi(stack: Stack) -> None:
    with netgym.make("netgym/EscapeFromPong-v0", **stack.kwargs) as env:
        assert set(env.observation_space.keys()) == {"ram", "screen"}
        check_env(env, skip_render_check=True)
        env.reset(seed=3)
        env.action_space.seed(3)  # the same play every run
        total, done = 0.0, False
        for _ in range(4000):
            _, reward, terminated, truncated, info = env.step(env.action_space.sample())
            total += reward
            if terminated or truncated:
                done = terminated
                break
        assert done and info["deaths"] == 5 and total < 0


def test_catch_passes_check_env(stack: Stack) -> None:
    with netgym.make("netgym/Catch-v0", **stack.kwargs) as env:
        assert env.get_action_meanings() == ["noop", "up", "down", "left", "right"]
        assert env.observation_space["screen"].shape == (240, 256, 3)
        assert env.observation_space["ram"].shape == (10,)
        check_env(env, skip_render_check=True)


def test_the_spec_gives_the_game_limit_or_a_shorter_time_limit(stack: Stack) -> None:
    with netgym.make("netgym/Catch-v0", **stack.kwargs) as env:
        assert env.spec is not None and env.spec.max_episode_steps == 250  # game.toml's
    time_limit = {"name": "time_limit", "kwargs": {"max_episode_steps": 3}}
    with netgym.make("netgym/Catch-v0", wrappers=[time_limit], **stack.kwargs) as env:
        assert env.spec is not None and env.spec.max_episode_steps == 3


def test_same_seed_and_actions_give_the_same_frames(stack: Stack) -> None:
    with netgym.make_vec("netgym/Catch-v0", 2, **stack.kwargs) as envs:
        traces = []
        for _ in range(2):
            obs, _ = envs.reset(seed=5)
            trace = [obs]
            for step in range(40):
                trace.append(envs.step(np.array([1 + step % 4, 4 - step % 4]))[0])
            traces.append(trace)
        for first, second in zip(*traces, strict=True):
            np.testing.assert_array_equal(first["screen"], second["screen"])
            np.testing.assert_array_equal(first["ram"], second["ram"])
        # env 0 and env 1 got seeds 5 and 6: other no-op counts, other targets
        assert not np.array_equal(traces[0][-1]["ram"][0], traces[0][-1]["ram"][1])


def test_final_screen_of_an_autoreset_episode_is_kept(stack: Stack) -> None:
    """The session converts screens straight into its shared memory; the last screen
    of an episode must survive the reset that follows it in the same step."""
    kwargs = {"env_kwargs": {"observation": "screen", "max_episode_steps": 4}, **stack.kwargs}
    with netgym.make_vec(
        "netgym/EscapeFromPong-v0", 2, autoreset_mode=AutoresetMode.DISABLED, **kwargs
    ) as envs:
        envs.reset(seed=1)
        for _ in range(4):
            expected, *_ = envs.step(np.array([1, 2]))
    with netgym.make_vec("netgym/EscapeFromPong-v0", 2, **kwargs) as envs:
        envs.reset(seed=1)
        for _ in range(4):
            obs, _, _, truncations, info = envs.step(np.array([1, 2]))
        assert truncations.all()
        for env in range(2):
            np.testing.assert_array_equal(info["final_obs"][env], expected[env])
            assert not np.array_equal(obs[env], expected[env])  # the reset's screen


def test_lua_error_reaches_the_client_and_the_instance_is_replaced(stack: Stack) -> None:
    with netgym.make("netgym/LuaError-v0", **stack.kwargs) as env:
        env.reset(seed=0)
        env.step(0)
        env.step(0)
        first = instance_pid(stack, "LuaError")
        with pytest.raises(EnvError, match=r"game.lua:6: boom on purpose"):
            env.step(0)
        env.reset(seed=0)  # a new instance
        assert instance_pid(stack, "LuaError") != first
        wait_for_the_signal(first, "SIGKILL")  # the service kills it, and does not wait
        env.step(0)


def test_a_game_script_requires_modules_and_reads_files_of_its_folder(stack: Stack) -> None:
    with netgym.make("netgym/Requires-v0", **stack.kwargs) as env:
        env.reset(seed=0)
        _, reward, _, _, info = env.step(0)
        assert (reward, info["data"]) == (7.0, 42.0)


def test_a_lua_error_in_a_vector_env_names_the_env(stack: Stack) -> None:
    with netgym.make_vec("netgym/LuaError-v0", 2, **stack.kwargs) as envs:
        envs.reset(seed=0)
        envs.step(np.array([0, 0]))
        envs.reset(options={"reset_mask": np.array([True, False])})
        envs.step(np.array([0, 0]))
        with pytest.raises(
            EnvError,
            match=r"^env 1: LuaError instance \w+ failed: the game.s Lua script failed: .*boom",
        ) as caught:
            envs.step(np.array([0, 0]))  # env 1's third step
        assert caught.value.details["env_index"] == 1
        assert "game.lua:6" in caught.value.details["lua_error"]


def test_a_script_that_returns_the_wrong_kind_of_value_is_a_clear_error(stack: Stack) -> None:
    with netgym.make("netgym/BadReturn-v0", **stack.kwargs) as env:
        env.reset(seed=0)
        _, reward, terminated, _, info = env.step(0)
        assert (reward, terminated, info["flag"]) == (1.0, False, 1.0)  # booleans become 1, 0
        with pytest.raises(EnvError) as caught:
            env.step(0)
        assert (
            "game.lua:4: game.step() (the function that starts on this line) must return "
            "true or false as done, not 0" in str(caught.value)
        )
        env.reset(seed=0)  # a new instance
        env.step(0)
    for game, said in [
        ("StringReward", r'must return a number as its reward, not "1"'),
        ("NulKey", r"the info key .*keys are names, without spaces, '='"),
        # Names that Gymnasium's and SB3's wrappers set: episode_statistics failed on a number.
        ("EpisodeKey", r"info key episode, which Gymnasium's RecordEpisode"),
        ("MaskKey", r"info key _score: .* tells which envs set the rest"),
    ]:
        with netgym.make(f"netgym/{game}-v0", **stack.kwargs) as env:
            env.reset(seed=0)
            with pytest.raises(EnvError, match=said):
                env.step(0)


@pytest.mark.parametrize(
    ("env_kwargs", "message"),
    [
        ({"observation": "pixels"}, r"observation must be 'screen', 'ram' or 'both', not 'pixels'"),
        ({"observation": "ram"}, r"observation='ram': Plain's manifest names no RAM values"),
        ({"timeout_s": -1}, r"timeout_s=-1: give the seconds a step may take, a number from"),
        ({"timeout_s": 1e-7}, r"timeout_s=1e-07: give the seconds .* from 0\.001 to 3600"),
        ({"timeout_s": 1e20}, r"timeout_s=1e\+20 leaves too little of the envapi's step_timeout_s"),
        ({"timeout_s": 31}, r"timeout_s=31 leaves .* would end the whole session.* half of it, 30"),
        ({"timeout_s": "10"}, r"timeout_s='10': give the seconds"),
        ({"max_episode_steps": 0}, r"max_episode_steps=0: give a whole number of steps above 0"),
        (
            {"observaton": "ram"},
            r"netgym/Plain-v0 takes no env_kwargs 'observaton'; it takes observation, timeout_s, "
            r"max_episode_steps$",
        ),
    ],
    ids=[
        "observation-unknown",
        "observation-no-ram",
        "timeout-negative",
        "timeout-tiny",
        "timeout-huge",
        "timeout-above-the-step-timeout",
        "timeout-text",
        "max-0",
        "unknown",
    ],
)
def test_bad_game_arguments_are_refused_when_the_session_opens(
    stack: Stack, env_kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        netgym.make("netgym/Plain-v0", env_kwargs=env_kwargs, **stack.kwargs)


def test_the_atari_wrapper_on_an_nes_game_says_it_is_for_ale_games(stack: Stack) -> None:
    with pytest.raises(
        InvalidRequestError, match=r"wrapper 'atari' is for ALE games \(ALE/\.\.\.\); netgym/"
    ):
        netgym.make("netgym/Plain-v0", wrappers=["atari"], **stack.kwargs)


def test_a_reward_that_is_not_finite_is_a_clear_error(stack: Stack) -> None:
    with netgym.make("netgym/NanReward-v0", **stack.kwargs) as env:
        env.reset(seed=0)
        with pytest.raises(
            EnvError,
            match=r"game.step\(\) \(the function that starts on this line\) must return a finite "
            r"reward, not -?nan",
        ):
            env.step(0)


def test_fceux_emulates_as_a_batch_job_and_draws_its_window_on_idle_cpu(stack: Stack) -> None:
    with netgym.make("netgym/Plain-v0", **stack.kwargs) as env:
        env.reset(seed=0)
        pid = env_instance_pid(stack, env)
        policies = {
            (task / "comm").read_text().strip(): os.sched_getscheduler(int(task.name))
            for task in Path(f"/proc/{pid}/task").iterdir()
        }
        assert policies.pop("emulatorThread_") == os.SCHED_BATCH  # FCEUX's name for it
        assert policies.pop("fceux") == os.SCHED_IDLE  # the main thread: Qt's window
        assert set(policies.values()) == {os.SCHED_IDLE}


def test_fceux_draws_nothing_on_the_virtual_display(stack: Stack) -> None:
    with netgym.make("netgym/Plain-v0", **stack.kwargs) as env:
        env.reset(seed=0)
        for _ in range(30):
            env.step(0)
        pid = env_instance_pid(stack, env)
        names = {
            (task / "comm").read_text().strip() for task in Path(f"/proc/{pid}/task").iterdir()
        }
        assert not {name for name in names if name.startswith("llvmpipe")}  # Mesa's drawing


def test_fceux_binds_no_key_to_the_game_pads(stack: Stack) -> None:
    # FCEUX looks up the key of every pad button bound to no key 120 times a
    # second, most of its main thread's CPU; the bridge presses buttons itself.
    with netgym.make("netgym/Plain-v0", **stack.kwargs) as env:
        env.reset(seed=0)
        environ = Path(f"/proc/{env_instance_pid(stack, env)}/environ").read_bytes()
        home = Path(dict(v.split(b"=", 1) for v in environ.split(b"\0") if v)[b"HOME"].decode())
        config = (home / ".fceux" / "fceux.cfg").read_text()
        pads = dict(re.findall(r"SDL\.Input\.GamePad\.(\d)\.Profile = (\S+)", config))
        assert pads.keys() == {"0", "1", "2", "3"} and len(set(pads.values())) == 1
        bindings: dict[tuple[int, str], str] = {}
        # FCEUX's format: a GUID, a name, then a pad configuration's button:binding pairs.
        profile = home / ".fceux" / "input" / "keyboard" / f"{pads['0']}.txt"
        for line in profile.read_text().splitlines():
            pairs = dict(field.split(":") for field in line.split(",")[2:])
            configuration = int(pairs.pop("config"))
            bindings |= {(configuration, button): bound for button, bound in pairs.items()}
        buttons = {"a", "b", "back", "start", "dpup", "dpdown", "dpleft", "dpright"}
        assert bindings.keys() == {(c, b) for c in range(4) for b in buttons | {"turboA", "turboB"}}
        # A key (k), a joystick's button (b), hat (h) or axis (a, +a, -a): none.
        assert not [bound for bound in bindings.values() if re.match(r"[kbh]|[+-]?a", bound)]


def test_a_script_may_not_take_the_bridges_frame_hook(stack: Stack) -> None:
    # The instance does not start: its script fails as it loads. That is the
    # game's error, and the env lives on: the next reset tries again.
    with netgym.make("netgym/TakesHook-v0", **stack.kwargs) as env:
        for _ in range(2):
            with pytest.raises(
                EnvError,
                match=r"game.lua:2: emu.registerafter\(\) is the bridge's.* next reset\(\) tries "
                r"that version again",
            ):
                env.reset(seed=0)


@pytest.mark.parametrize(
    ("game", "error"),
    [
        ("PlaysFrames", r"game\.lua:2: emu\.frameadvance\(\) is the bridge's"),
        ("OldPlaysFrames", r"game\.lua:1: FCEU\.frameadvance\(\) is the bridge's"),
    ],
)
def test_a_script_may_not_play_frames(stack: Stack, game: str, error: str) -> None:
    # The bridge plays each step's frames with the agent's buttons held.
    with (
        netgym.make(f"netgym/{game}-v0", **stack.kwargs) as env,
        pytest.raises(EnvError, match=error),
    ):
        env.reset(seed=0)


@pytest.mark.parametrize(
    ("game", "error"),
    [
        ("Exits", r"game\.lua:2: os\.exit\(\) is the bridge's"),
        ("Pauses", r"game\.lua:2: emu\.pause\(\) is the bridge's"),
    ],
)
def test_a_script_may_not_run_fceux(stack: Stack, game: str, error: str) -> None:
    # It ended FCEUX (a lost instance, with no line), or paused it (a step timeout).
    with netgym.make(f"netgym/{game}-v0", **stack.kwargs) as env:
        env.reset(seed=0)
        with pytest.raises(EnvError, match=error) as raised:
            env.step(0)
        assert raised.value.details.get("instance_lost") is not True


def test_a_script_may_not_register_callbacks(stack: Stack) -> None:
    # FCEUX does not call them while the bridge drives it, and an error in one
    # would stop the bridge: the script fails as it loads, naming the line.
    with (
        pytest.raises(EnvError, match=r"game\.lua:3: memory\.registerwrite\(\) is not avail"),
        netgym.make("netgym/Callbacks-v0", **stack.kwargs) as env,
    ):
        env.reset(seed=0)


def test_a_script_that_fails_to_load_is_the_games_error_to_the_emulator_service(
    stack: Stack,
) -> None:
    reply = httpx.post(f"{stack.emulator_url}/v1/instances", json={"game": "TakesHook"}, timeout=60)
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert error["code"] == "game_error"
    assert error["details"]["file"].endswith("game.lua")


@pytest.mark.parametrize("fault", ["SIGKILL", "SIGSTOP"])
def test_dead_or_stopped_fceux_is_a_clear_error_in_time(stack: Stack, fault: str) -> None:
    kwargs = stack.kwargs
    with (
        netgym.make("netgym/Plain-v0", env_kwargs={"timeout_s": 3}, **kwargs) as env,
        netgym.make("netgym/Plain-v0", **kwargs) as bystander,
    ):
        env.reset(seed=0)
        bystander.reset(seed=0)
        (victim,) = env_instance_pids(stack, env)
        os.kill(victim, getattr(signal, fault))
        wait_for_the_signal(victim, fault)
        started = time.monotonic()
        # A killed instance: the error says how it ended, as the service saw it.
        expected = "failed: .*FCEUX was killed by SIGKILL" if fault == "SIGKILL" else "within 3 s"
        with pytest.raises(EnvError, match=expected):
            for _ in range(10):
                env.step(0)
        assert time.monotonic() - started < 8
        # No instance runs now: a step says to reset rather than step a new, unreset one.
        with pytest.raises(EnvError, match=r"no instance runs .* call reset\(\)"):
            env.step(0)
        for _ in range(20):
            bystander.step(1)
        env.reset(seed=0)
        env.step(0)
        wait_for_the_signal(victim, "SIGKILL")  # the service kills a stopped one


def test_a_reconnecting_env_goes_on_after_an_instance_dies_but_not_after_a_lua_error(
    stack: Stack,
) -> None:
    from netgym.sb3 import RECONNECTED_KEY, ReconnectingVecEnv

    envs = ReconnectingVecEnv("netgym/Plain-v0", 2, **stack.kwargs)
    try:
        envs.reset()
        envs.step(np.array([0, 0]))
        os.kill(env_instance_pid(stack, envs.remote), signal.SIGKILL)
        for _ in range(5):
            _, _, dones, infos = envs.step(np.array([0, 0]))
            if envs.reconnects:
                break
        assert envs.reconnects == 1 and dones.all() and infos[1][RECONNECTED_KEY]
        envs.step(np.array([0, 0]))
    finally:
        envs.close()
    # Bugs of the game, which a new instance would meet again: an error, an endless
    # loop (stopped at 90% of timeout_s), a hang that no Lua hook reaches.
    for game, kwargs, error in [
        ("LuaError", {}, r"game.lua:6: boom on purpose"),
        ("EndlessLoop", {"env_kwargs": {"timeout_s": 3}}, r"game.lua:6: game.step\(\) has run"),
        ("Sleeping", {"env_kwargs": {"timeout_s": 1}}, r"no reply within 1 s"),
    ]:
        failing = ReconnectingVecEnv(f"netgym/{game}-v0", 1, **kwargs, **stack.kwargs)
        try:
            failing.reset()
            with pytest.raises(EnvError, match=error):
                for _ in range(3):
                    failing.step(np.array([0]))
            assert failing.reconnects == 0
        finally:
            failing.close()


def test_instances_that_all_hang_in_one_step_take_one_timeout_not_one_each(stack: Stack) -> None:
    # The session reads the replies one after another: each wait ends at the same
    # deadline, counted from the send (3 instances x 2 s would be 6 s).
    with netgym.make_vec("netgym/Plain-v0", 3, env_kwargs={"timeout_s": 2}, **stack.kwargs) as envs:
        envs.reset(seed=0)
        envs.step(np.zeros(3, np.int64))
        pids = env_instance_pids(stack, envs)
        assert len(pids) == 3
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        for pid in pids:
            wait_for_the_signal(pid, "SIGSTOP")
        started = time.monotonic()
        with pytest.raises(EnvError, match=r"within 2 s.*game script's game\.step\(\)"):
            envs.step(np.zeros(3, np.int64))
        assert time.monotonic() - started < 5
        envs.reset(seed=0)
        envs.step(np.zeros(3, np.int64))


def test_a_short_step_timeout_shortens_an_nes_envs_own_default(
    stack: Stack, tmp_path: Path
) -> None:
    # With NETGYM_STEP_TIMEOUT_S=8 the env's default 10 s would outlast the session's
    # step: a hang would end the whole session, not its episode. (8 s, not less: a
    # reset starts a new FCEUX, which takes seconds on a loaded machine.)
    with (
        run_envapi(tmp_path, emulator_url=stack.emulator_url, step_timeout_s="8") as short,
        netgym.make("netgym/Sleeping-v0", url=short.url, token=short.token) as env,
    ):
        env.reset(seed=0)
        env.step(0)
        with pytest.raises(EnvError, match=r"no reply within 4 s"):
            env.step(0)
        env.reset(seed=0)  # the session goes on, with a new instance
        env.step(0)


def test_a_reset_after_the_instance_died_between_steps_starts_a_new_one(stack: Stack) -> None:
    with netgym.make("netgym/Plain-v0", **stack.kwargs) as env:
        env.reset(seed=0)
        env.step(0)
        victim = env_instance_pid(stack, env)
        os.kill(victim, signal.SIGKILL)
        wait_for_the_signal(victim, "SIGKILL")  # every thread has exited: its socket is closed
        env.reset(seed=0)  # no error first
        env.step(0)
        assert env_instance_pid(stack, env) != victim


def test_one_failed_instance_in_a_vector_session_leaves_the_others_in_step(stack: Stack) -> None:
    """The session steps its instances together; one that dies must not desync the others."""
    actions = np.random.default_rng(0).integers(0, 3, (15, 2))
    screen = {"observation": "screen"}
    with netgym.make_vec("netgym/EscapeFromPong-v0", 2, env_kwargs=screen, **stack.kwargs) as envs:
        envs.reset(seed=[5, 6])
        envs.step(actions[0])
        os.kill(env_instance_pid(stack, envs), signal.SIGKILL)
        with pytest.raises(EnvError, match="failed"):
            for _ in range(5):
                envs.step(actions[0])
        first, _ = envs.reset(seed=[5, 6])
        frames = [first] + [envs.step(a)[0] for a in actions]
    for index, seed in enumerate([5, 6]):
        with netgym.make("netgym/EscapeFromPong-v0", env_kwargs=screen, **stack.kwargs) as env:
            expected = [env.reset(seed=seed)[0]] + [env.step(int(a))[0] for a in actions[:, index]]
        for step, (got, want) in enumerate(zip(frames, expected, strict=True)):
            assert np.array_equal(got[index], want), f"env {index} differs at step {step}"


# FCEUX's threads but the emulating one are idle-class: on a busy machine its
# main thread, which a signal wakes first, may wait seconds for a core before
# FCEUX stops, or exits.
SIGNAL_TAKES_S = 15


def wait_for_the_signal(pid: int, fault: str) -> None:
    """Wait until FCEUX ``pid`` has stopped (SIGSTOP: state "T") or exited (SIGKILL)."""
    deadline = time.monotonic() + SIGNAL_TAKES_S
    stat = Path(f"/proc/{pid}/stat")

    def taken() -> bool:
        if fault == "SIGKILL":
            return not alive(pid)
        return stat.read_text().rsplit(")", 1)[1].split()[0] == "T"

    while not taken():
        assert time.monotonic() < deadline, f"FCEUX {pid} has not taken {fault}"
        time.sleep(0.01)


def env_instance_pid(stack: Stack, env: netgym.RemoteEnv | netgym.RemoteVectorEnv) -> int:
    """The FCEUX pid behind a remote env (the first one of a vector env's)."""
    return env_instance_pids(stack, env)[0]


def env_instance_pids(stack: Stack, env: netgym.RemoteEnv | netgym.RemoteVectorEnv) -> list[int]:
    """The FCEUX pids behind a remote env's session."""
    instances = httpx.get(f"{stack.emulator_url}/v1/instances").json()["instances"]
    headers = {"Authorization": f"Bearer {stack.envapi.token}"}
    status = httpx.get(f"{stack.envapi.url}/v1/sessions/{env.session_id}", headers=headers).json()
    session_pid = status["pid"]
    # FCEUX is a child of the emulator service, so match by the connection: the
    # session's socket to an instance's port, and the FCEUX that owns its other
    # end (a port alone may name an older instance whose bridge has let it go).
    connections = []
    for line in Path(f"/proc/{session_pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(f.split(":")[1], 16) for f in fields[1:3])
        connections.append((local, remote, fields[9]))
    ours = [
        (local, remote) for local, remote, inode in connections if _owns_socket(session_pid, inode)
    ]
    pids = []
    for local, remote in ours:
        peers = [inode for a, b, inode in connections if (a, b) == (remote, local)]
        pids += [i["pid"] for i in instances for inode in peers if _owns_socket(i["pid"], inode)]
    assert pids, "no instance connected to the session process"
    return pids


def _owns_socket(pid: int, inode: str) -> bool:
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) == f"socket:[{inode}]":
                return True
        except OSError:
            pass
    return False


def test_emulator_service_killed_leaves_no_fceux_or_xvfb(tmp_path: Path) -> None:
    games = games_dir(tmp_path)
    with run_emulator(tmp_path, games) as (url, process):
        screen_dir = Path(httpx.get(f"{url}/v1/health").json()["screen_files"]["dir"])
        reply = httpx.post(
            f"{url}/v1/instances", json={"game": "Plain", "screen_file": True}, timeout=60
        ).json()
        assert Path(reply["screen_file"]).parent == screen_dir
        spawned = descendants(process.pid)
        assert reply["pid"] in spawned and len(spawned) >= 2  # FCEUX and Xvfb
        process.kill()
        process.wait()
        deadline = time.monotonic() + SIGNAL_TAKES_S
        while any(alive(p) for p in spawned) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in spawned if alive(p)]
    # The killed service could not remove its screen folder: the next one to start does.
    assert screen_dir.is_dir()
    with run_emulator(tmp_path, games):
        assert not screen_dir.exists()


def test_direct_use_without_the_envapi(stack: Stack) -> None:
    code = (
        "from netgym.emulator.env import EmulatorEnv\n"
        f"env = EmulatorEnv('Plain', {stack.emulator_url!r}, observation='screen')\n"
        "obs, _ = env.reset(seed=1)\n"
        "assert obs.shape == (240, 256, 3)\n"
        "env.step(1)\nenv.close()\nprint('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_envapi_health_says_whether_its_emulator_service_answers(
    stack: Stack, tmp_path: Path
) -> None:
    health = httpx.get(f"{stack.envapi.url}/v1/health").json()
    assert re.fullmatch(r"ok: \d+ games", health["checks"]["emulator"])
    (tmp_path / "refused").mkdir()
    (tmp_path / "hung").mkdir()
    with run_envapi(tmp_path / "refused", emulator_url="http://127.0.0.1:9") as alone:
        reply = httpx.get(f"{alone.url}/v1/health", timeout=30)
        assert reply.status_code == 200  # Atari and the classics are still served
        assert reply.json()["checks"]["emulator"].startswith("unreachable: ")
    # A hung emulator service (it connects, never answers) must not hold the health check.
    hung = socket.create_server(("127.0.0.1", 0))  # started, then the emulator hangs
    hung_url = f"http://127.0.0.1:{hung.getsockname()[1]}"
    with hung, run_envapi(tmp_path / "hung", emulator_url=hung_url) as alone:
        # The envapi keeps the emulator's state 5 s: a call in the next 6 s asks again.
        until = time.monotonic() + 6
        while time.monotonic() < until:
            started = time.monotonic()
            reply = httpx.get(f"{alone.url}/v1/health", timeout=30)
            assert time.monotonic() - started < 8  # not the 10 s of the hung call
            assert reply.status_code == 200
            assert reply.json()["checks"]["emulator"].startswith("unreachable: ")


def test_an_emulator_service_that_comes_back_is_served_again_at_once(
    stack: Stack, tmp_path: Path
) -> None:
    reserved = socket.socket()  # bound, not listening: refused, and no other test's port
    reserved.bind(("127.0.0.1", 0))
    port = reserved.getsockname()[1]
    with reserved, run_envapi(tmp_path, emulator_url=f"http://127.0.0.1:{port}") as alone:
        kwargs = {"url": alone.url, "token": alone.token}
        with pytest.raises(ServerUnavailableError, match="which does not answer"):
            netgym.make("netgym/Catch-v0", **kwargs)
        reserved.close()
        with run_emulator(tmp_path, stack.games, port=port):
            time.sleep(1.0)  # the envapi asks again once its failed read is a second old
            env = netgym.make("netgym/Catch-v0", **kwargs)  # not 5 s later
            env.close()


def test_an_unreachable_emulator_service_is_named_as_such() -> None:
    with pytest.raises(ServerUnavailableError) as caught:
        EmulatorEnv("Catch", "http://127.0.0.1:9")
    assert "the emulator service at http://127.0.0.1:9" in caught.value.message
    assert "netgym-emulator" in caught.value.message


def test_the_emulator_service_answers_every_error_with_netgyms_error_body(stack: Stack) -> None:
    url = stack.emulator_url
    unknown_game = httpx.post(f"{url}/v1/instances", json={"game": "NoSuchGame"})
    malformed = httpx.post(f"{url}/v1/instances", json={"screen": "sideways"})
    unknown_key = httpx.post(f"{url}/v1/instances", json={"game": "Plain", "sreen": False})
    unknown_path = httpx.get(f"{url}/v1/no-such-thing")
    wrong_method = httpx.put(f"{url}/v1/games")
    not_a_bool = httpx.post(f"{url}/v1/instances", json={"game": "Plain", "screen_file": "yes"})
    no_such_instance = httpx.delete(f"{url}/v1/instances/nope")
    assert not_a_bool.status_code == 422 and "screen_file" in not_a_bool.json()["error"]["message"]
    assert no_such_instance.json()["error"]["code"] == "session_not_found"
    assert unknown_game.json()["error"]["code"] == "unknown_env"
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (422, "invalid_request")
    assert "body.game: Field required" in malformed.json()["error"]["message"]
    assert unknown_key.status_code == 422 and "sreen" in unknown_key.json()["error"]["message"]
    assert (unknown_path.status_code, unknown_path.json()["error"]["code"]) == (404, "not_found")
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    with pytest.raises(InvalidRequestError, match=r"body\.game"):  # the client's exception
        RestClient(url, None, service=EMULATOR).call("POST", "/v1/instances", {})


@pytest.mark.parametrize("limit", [0, -1, 3601, "1", True, float("nan"), float("inf")])
def test_a_script_time_limit_out_of_range_is_refused(stack: Stack, limit: object) -> None:
    body = {"game": "Plain", "script_timeout_s": limit}
    reply = httpx.post(
        f"{stack.emulator_url}/v1/instances",
        content=json.dumps(body),
        headers={"content-type": "application/json"},
    )
    assert (reply.status_code, reply.json()["error"]["code"]) == (422, "invalid_request")
    assert "script_timeout_s" in reply.json()["error"]["message"]


def test_render_keeps_its_frame_when_the_next_step_overwrites_the_observation(
    stack: Stack,
) -> None:
    env = EmulatorEnv("Catch", stack.emulator_url, observation="screen", render_mode="rgb_array")
    out = np.zeros((240, 256, 3), np.uint8)
    try:
        env.reset(seed=2)
        env.step_send(1)
        assert env.step_receive(out)[0] is out  # the envapi's shared memory, say
        frame = env.render()
        assert frame is not None and frame is not out and np.array_equal(frame, out)
        out[:] = 7  # the next step's screen
        assert not np.array_equal(frame, out)
    finally:
        env.close()


def test_screens_through_the_shared_file_equal_screens_through_the_socket(stack: Stack) -> None:
    shared = EmulatorEnv("EscapeFromPong", stack.emulator_url, observation="screen")
    assert shared._shares_screens  # tests run on the service's host
    socket_only = EmulatorEnv("EscapeFromPong", stack.emulator_url, observation="screen")
    socket_only._shares_screens = False
    try:
        first, _ = shared.reset(seed=5)
        second, _ = socket_only.reset(seed=5)
        screen_files = {
            i["instance_id"]: i["screen_file"]
            for i in httpx.get(f"{stack.emulator_url}/v1/instances").json()["instances"]
        }
        shared_file = screen_files[shared.instance_id]
        assert shared_file is not None
        assert screen_files[socket_only.instance_id] is None
        assert np.array_equal(first, second)
        for action in [1, 1, 2, 0, 2] * 6:
            first = shared.step(action)[0]
            second = socket_only.step(action)[0]
            assert np.array_equal(first, second)
        assert first.any()
    finally:
        shared.close()
        socket_only.close()
    assert not Path(shared_file).exists()  # removed with its instance


SAVE_SCRIPT = """\
emu.speedmode("maximum")
for _ = 1, 300 do emu.frameadvance() end
local state = savestate.create(1)
savestate.save(state)
savestate.persist(state)
savestate.save(state)
emu.exit()
"""


# FCEUX's own frame count, which a save state from a slot file carries.
EMULATOR_FRAME_SCRIPT = """\
local game = {}
function game.step() return 0, false, {emulator_frame = emu.framecount()} end
return game
"""


def test_start_from_a_save_state(tmp_path: Path) -> None:
    """A game may start from an FCEUX save state (slot 0) instead of power-on."""
    from pyvirtualdisplay import Display

    from tests.emulator.conftest import EFP_ROM, FAULT_MANIFEST

    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "save.lua").write_text(SAVE_SCRIPT)
    fceux = shutil.which("fceux") or "/usr/games/fceux"
    with Display(visible=False, size=(640, 480)):
        subprocess.run(
            [fceux, "--sound", "0", "--loadlua", str(tmp_path / "save.lua"), str(EFP_ROM)],
            env={**os.environ, "HOME": str(home)},
            capture_output=True,
            timeout=60,
            check=False,
        )
    state = home / ".fceux" / "fcs" / "efp.fc0"
    assert state.stat().st_size > 0
    games = tmp_path / "games"
    # FCEUX names a zipped ROM's save states after the ROM inside the zip.
    zipped = tmp_path / "efp.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.write(EFP_ROM, "Escape From Pong (PD).nes")
    cases = (
        ("FromPowerOn", "", EFP_ROM),
        ("FromState", 'savestate = "start.fc0"', EFP_ROM),
        ("FromStateZipped", 'savestate = "start.fc0"', zipped),
        ("FromDamagedState", 'savestate = "start.fc0"', EFP_ROM),
    )
    for name, extra, rom in cases:
        folder = games / name.lower()
        folder.mkdir(parents=True)
        manifest = FAULT_MANIFEST.format(name=name, rom=rom).replace("[start]", f"[start]\n{extra}")
        (folder / "game.toml").write_text(manifest)
        (folder / "game.lua").write_text(EMULATOR_FRAME_SCRIPT)
        shutil.copyfile(state, folder / "start.fc0")
    damaged = games / "fromdamagedstate" / "start.fc0"
    damaged.write_bytes(b"FCS" + bytes(range(256)) * 12)
    with run_emulator(tmp_path, games) as (url, _):
        frames = {}
        for name, _, _ in cases[:3]:
            env = EmulatorEnv(name, url)
            env.reset(seed=0)
            frames[name] = env.step(0)[4]["emulator_frame"]
            env.close()
        env = EmulatorEnv("FromDamagedState", url)
        with pytest.raises(EnvError, match=rf"save state {damaged} did not load: it is damaged"):
            env.reset(seed=0)
        env.close()
    assert frames["FromState"] >= frames["FromPowerOn"] + 250
    assert frames["FromStateZipped"] == frames["FromState"]


def test_a_bridge_that_cannot_be_reached_is_an_env_error_and_the_instance_goes_back(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An instance that dies between its start and the connection, say. A
    # ConnectionLostError would end the envapi session the env serves.
    def unreachable(*args: object, **kwargs: object) -> None:
        raise ConnectionLostError("cannot connect to the emulator at 127.0.0.1:1")

    env = EmulatorEnv("Catch", stack.emulator_url)
    try:
        with monkeypatch.context() as patch:
            patch.setattr("netgym.emulator.env.BridgeConnection", unreachable)
            with pytest.raises(EnvError, match=r"cannot connect.*next reset") as caught:
                env.reset(seed=0)
        assert caught.value.details["instance_lost"] is True
        instance_id = caught.value.details["instance_id"]
        assert httpx.get(f"{stack.emulator_url}/v1/instances/{instance_id}").status_code == 404
        env.reset(seed=0)
    finally:
        env.close()


def test_a_game_with_the_buttons_as_actions_names_each_button(stack: Stack) -> None:
    folder = stack.games / "buttons-as-actions"
    folder.mkdir()
    try:
        (folder / "game.lua").write_text(PLAIN_SCRIPT)
        manifest = FAULT_MANIFEST.format(name="ButtonsAsActions", rom=EFP_ROM)
        combos = manifest[manifest.index("combos") : manifest.index("\n[observation]")]
        (folder / "game.toml").write_text(manifest.replace(combos, 'type = "buttons"'))
        env = EmulatorEnv("ButtonsAsActions", stack.emulator_url)
        try:
            assert env.action_space == MultiBinary(8)
            assert env.get_action_meanings() == list(BUTTONS)
        finally:
            env.close()
    finally:
        shutil.rmtree(folder)
