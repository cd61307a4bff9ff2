"""The emulator service under faults: limits, a dead display, bad set-ups, idle clients."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

import netgym
from netgym.emulator.bridge import BridgeConnection
from netgym.emulator.env import EmulatorEnv
from netgym.errors import EnvError, LimitExceededError
from netgym_emulator.output import LOG_LIMIT_BYTES
from netgym_emulator.pool import InstancePool
from netgym_emulator.settings import EmulatorSettings
from tests.emulator.conftest import (
    EFP_ROM,
    FAULT_MANIFEST,
    PLAIN_SCRIPT,
    games_dir,
    one_game,
)
from tests.servers import descendants, run_emulator, run_envapi, wait_for


def start(url: str, game: str = "Plain", **body: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/instances", json={"game": game, **body}, timeout=60)


def process_names(pid: int) -> dict[int, str]:
    names = {}
    for child in descendants(pid):
        with contextlib.suppress(OSError):
            names[child] = Path(f"/proc/{child}/comm").read_text().strip()
    return names


def wait_for_the_end(url: str, instance_id: str, timeout_s: float) -> httpx.Response:
    """The service's 404 for an instance, once it has ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = httpx.get(f"{url}/v1/instances/{instance_id}", timeout=30)
        if state.status_code == 404:
            return state
        assert time.monotonic() < deadline, state.text
        time.sleep(0.2)


def test_starts_at_once_cannot_pass_the_limit(tmp_path: Path) -> None:
    with run_emulator(tmp_path, games_dir(tmp_path), max_instances="2") as (url, _):
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda _: start(url), range(4)))
        codes = sorted(r.status_code for r in replies)
        assert codes == [201, 201, 429, 429], [r.text for r in replies]
        refused = next(r for r in replies if r.status_code == 429).json()["error"]["message"]
        assert "MAX_INSTANCES=2" in refused


@pytest.mark.parametrize(
    "wrappers",
    [[], [{"name": "frame_stack", "kwargs": {"stack_size": 2}}]],
    ids=["stepped-together", "wrapped-in-workers"],  # wrapped, the envs split over processes
)
def test_a_session_over_the_limit_gives_back_what_its_failed_reset_started(
    tmp_path: Path, wrappers: list[object]
) -> None:
    with (
        run_emulator(tmp_path, games_dir(tmp_path), max_instances="2") as (url, _),
        run_envapi(tmp_path, emulator_url=url) as envapi,
    ):
        kwargs = {"url": envapi.url, "token": envapi.token}
        # More envs than the service ever runs: refused at once, not at every reset.
        with pytest.raises(
            LimitExceededError,
            match=r"num_envs=3 is above 2, the emulator service's limit of FCEUX instances at "
            r"once \(NETGYM_EMULATOR_MAX_INSTANCES\)",
        ):
            netgym.make_vec("netgym/Plain-v0", 3, wrappers=wrappers, **kwargs)
        with netgym.make("netgym/Plain-v0", **kwargs) as other:
            other.reset(seed=0)  # one instance of the two
            with netgym.make_vec("netgym/Plain-v0", 2, wrappers=wrappers, **kwargs) as envs:
                with pytest.raises(LimitExceededError, match=r"^env \d: .*close envs you no"):
                    envs.reset(seed=0)
                assert len(httpx.get(f"{url}/v1/instances").json()["instances"]) == 1  # other's
            other.step(0)
            with netgym.make("netgym/Plain-v0", **kwargs) as third:  # not starved
                third.reset(seed=0)
                third.step(0)


def test_a_vector_envs_reset_starts_its_instances_at_once(tmp_path: Path) -> None:
    """One after another, four starts of 3 s would run past the reset's 8 s step timeout."""
    games = games_dir(tmp_path)
    slow = games / "slow-start"
    slow.mkdir()
    (slow / "game.toml").write_text(FAULT_MANIFEST.format(name="SlowStart", rom=EFP_ROM))
    (slow / "game.lua").write_text('require("socket").sleep(3)\n' + PLAIN_SCRIPT)
    with (
        run_emulator(tmp_path, games) as (url, _),
        run_envapi(tmp_path, emulator_url=url, step_timeout_s="8") as envapi,
        netgym.make_vec("netgym/SlowStart-v0", 4, url=envapi.url, token=envapi.token) as envs,
    ):
        envs.reset(seed=0)
        envs.step(np.zeros(4, np.int64))
        envs.reset(seed=1)  # on the instances it has


def test_a_sessions_instances_wait_as_long_as_the_session_may_be_idle(tmp_path: Path) -> None:
    """A session may be idle longer than the emulator service lets an instance be."""
    games = games_dir(tmp_path)
    with (
        run_emulator(tmp_path, games, idle_timeout_s="2") as (url, _),
        run_envapi(tmp_path, emulator_url=url, idle_timeout_s="30") as envapi,
        netgym.make_vec("netgym/Plain-v0", 2, url=envapi.url, token=envapi.token) as envs,
    ):
        envs.reset(seed=0)
        envs.step(np.zeros(2, np.int64))
        time.sleep(4)
        envs.step(np.zeros(2, np.int64))
    with run_emulator(tmp_path, games, idle_timeout_s="2") as (url, _):
        env = EmulatorEnv("Plain", url)  # a client of its own: the service's setting
        try:
            env.reset(seed=0)
            time.sleep(4)
            with pytest.raises(EnvError, match=r"its client sent nothing for 2 s"):
                env.step(0)
        finally:
            env.close()


def test_a_dead_display_is_started_again_by_the_service_itself(tmp_path: Path) -> None:
    with run_emulator(tmp_path, games_dir(tmp_path)) as (url, process):
        instance = start(url)
        assert instance.status_code == 201
        xvfb = [pid for pid, name in process_names(process.pid).items() if name == "Xvfb"]
        assert len(xvfb) == 1
        os.kill(xvfb[0], signal.SIGKILL)
        ended = wait_for_the_end(url, instance.json()["instance_id"], 30).json()["error"]
        assert "it lost its virtual display (Xvfb died" in ended["message"], ended
        # No instance start is needed: a client's first call may be GET /v1/health.
        deadline = time.monotonic() + 10
        while (health := httpx.get(f"{url}/v1/health", timeout=30)).json()["display_restarts"] == 0:
            assert time.monotonic() < deadline, health.text
            time.sleep(0.1)
        deadline = time.monotonic() + 10
        while (health := httpx.get(f"{url}/v1/health", timeout=30)).status_code != 200:
            assert time.monotonic() < deadline, health.text
            time.sleep(0.1)
        assert health.json()["display"] and health.json()["display_restarts"] == 1
        new_xvfb = [pid for pid, name in process_names(process.pid).items() if name == "Xvfb"]
        assert len(new_xvfb) == 1 and new_xvfb != xvfb
        reply = start(url)
        assert reply.status_code == 201, reply.text


def test_screens_a_killed_service_left_in_a_named_folder_are_removed_at_start(
    tmp_path: Path,
) -> None:
    screens = tmp_path / "screens"  # as Compose's tmpfs volume, which outlives the service
    screens.mkdir()
    (screens / "0123abcd.screen").write_bytes(bytes(245_772))
    (screens / "notes.txt").write_text("not ours")
    with run_emulator(tmp_path, games_dir(tmp_path), screen_dir=str(screens)) as (url, _):
        assert start(url, screen_file=True).status_code == 201
        assert {p.suffix for p in screens.iterdir()} == {".screen", ".txt", ""}  # "" : token
        assert not (screens / "0123abcd.screen").exists()
    assert (screens / "notes.txt").read_text() == "not ours"


def test_files_in_a_named_screen_folder_are_this_users_alone(tmp_path: Path) -> None:
    """Other users could read the screens (the sessions' observations) and the token;
    with a link planted in a folder all may write in (a tmpfs volume, /dev/shm), they
    could have the service overwrite a file of their choosing."""
    screens = tmp_path / "screens"
    screens.mkdir()
    screens.chmod(0o1777)
    victim = tmp_path / "victim"
    victim.write_text("mine")
    (screens / "token").symlink_to(victim)
    made = tmp_path / "made" / "screens"
    games = games_dir(tmp_path)
    for folder in (screens, made):
        with run_emulator(tmp_path, games, screen_dir=str(folder)) as (url, _):
            reply = start(url, screen_file=True)
            assert reply.status_code == 201, reply.text
            token, screen = folder / "token", Path(reply.json()["screen_file"])
            assert not token.is_symlink() and victim.read_text() == "mine"
            assert [stat.S_IMODE(f.stat().st_mode) for f in (token, screen)] == [0o600, 0o600]
    assert stat.S_IMODE(made.stat().st_mode) == 0o700


def test_a_killed_instance_leaves_no_temporary_file(tmp_path: Path) -> None:
    # FCEUX keeps the bridge's start state in a temporary file it removes only on
    # a clean exit; instances are killed.
    before = set(Path(tempfile.gettempdir()).glob("snlua*"))
    with run_emulator(tmp_path, games_dir(tmp_path)) as (url, _):
        instance = start(url).json()
        assert httpx.delete(f"{url}/v1/instances/{instance['instance_id']}").status_code < 300
    assert set(Path(tempfile.gettempdir()).glob("snlua*")) <= before


def test_a_failed_start_leaves_no_file(tmp_path: Path) -> None:
    work = tmp_path / "work"
    with run_emulator(tmp_path, games_dir(tmp_path), fceux="/bin/false", work_dir=str(work)) as (
        url,
        _,
    ):
        reply = start(url, screen_file=True)
        assert reply.status_code == 500
        assert "did not start: FCEUX exited with code 1" in reply.json()["error"]["message"]
        screens = Path(httpx.get(f"{url}/v1/health").json()["screen_files"]["dir"])
        assert list(work.iterdir()) == []
        assert {p.name for p in screens.iterdir()} == {"owner.lock", "token"}


def test_a_bridge_that_cannot_listen_says_so(tmp_path: Path) -> None:
    with run_emulator(tmp_path, games_dir(tmp_path), bridge_host="203.0.113.7") as (url, _):
        reply = start(url)
        message = reply.json()["error"]["message"]
        assert "could not start: cannot listen on 203.0.113.7" in message, message
        assert "NETGYM_EMULATOR_BRIDGE_HOST" in message


def test_an_instance_whose_client_went_silent_exits_and_says_why(tmp_path: Path) -> None:
    with run_emulator(tmp_path, games_dir(tmp_path), idle_timeout_s="1") as (url, _):
        instance = start(url).json()
        with socket.create_connection((instance["host"], instance["port"])) as bridge:
            bridge.sendall(instance["key"].encode())
            state = wait_for_the_end(url, instance["instance_id"], 10)
        message = state.json()["error"]["message"]
        assert "its client sent nothing for 1 s (the idle timeout, NETGYM_EMULATOR_IDLE" in message


def test_an_unclaimed_or_garbled_instance_exits_and_says_why(tmp_path: Path) -> None:
    with run_emulator(tmp_path, games_dir(tmp_path), attach_timeout_s="2") as (url, _):
        garbled = start(url).json()  # claimed at once, well within its 2 s
        with socket.create_connection((garbled["host"], garbled["port"])) as bridge:
            bridge.sendall(garbled["key"].encode() + b"X\xff\xfe\xfd\xfc")  # no UTF-8 either
            message = wait_for_the_end(url, garbled["instance_id"], 30).json()["error"]["message"]
        assert "its client sent an unknown request (hex) 58fffefdfc" in message, message
        unclaimed = start(url).json()  # still serving
        message = wait_for_the_end(url, unclaimed["instance_id"], 30).json()["error"]["message"]
        assert "no client connected within 2 s of the start (the attach timeout" in message


def test_only_the_client_with_the_key_gets_the_instance(tmp_path: Path) -> None:
    """Any local process may reach a bridge's port before its client does: one with
    the wrong key is shut out at once, and silent ones do not hold the client back."""
    with run_emulator(tmp_path, games_dir(tmp_path)) as (url, _):
        instance = start(url).json()
        address = (instance["host"], instance["port"])
        assert "key" not in httpx.get(f"{url}/v1/instances/{instance['instance_id']}").json()
        silent = [socket.create_connection(address) for _ in range(8)]  # 2 s each, in a queue
        # A key's first digits, right or wrong, get the same answer: none.
        for first in (instance["key"][0], "g"):
            with socket.create_connection(address) as guesser:
                guesser.sendall(first.encode())
                guesser.settimeout(0.5)
                with pytest.raises(TimeoutError):
                    guesser.recv(100)  # not closed: its next digits decide
        with socket.create_connection(address) as wrong:
            wrong.sendall(b"0" * len(instance["key"]) + b"R\0\0\0\0")
            wrong.settimeout(10)
            assert wrong.recv(100) == b""  # closed, unanswered
        # Its 5 s would not cover 8 silent connections read one after another.
        bridge = BridgeConnection(*address, 0, 5.0, key=instance["key"])
        try:
            assert bridge.request(b"R", 0).done is False  # a reset, answered
        finally:
            bridge.close()
            for connection in silent:
                connection.close()


def test_instances_need_the_token_when_the_service_has_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another local process could otherwise list, stop or use up the instances
    of every session; the games' list and health stay open, for `curl`."""
    with run_emulator(tmp_path, games_dir(tmp_path), token="s3cret") as (url, _):
        refused = start(url)
        assert refused.status_code == 401
        assert "NETGYM_EMULATOR_TOKEN" in refused.json()["error"]["message"]
        assert httpx.get(f"{url}/v1/instances").status_code == 401
        wrong = {"Authorization": "Bearer guess"}
        assert httpx.delete(f"{url}/v1/instances/abc", headers=wrong).status_code == 401
        assert httpx.get(f"{url}/v1/games").status_code == 200
        assert httpx.get(f"{url}/v1/health").status_code == 200
        # An envapi with another token: its client is told so, not that its own is wrong.
        with (
            EmulatorEnv("Plain", url, token="another") as other,
            pytest.raises(EnvError, match=r"refused the token sent for its instances"),
        ):
            other.reset(seed=0)
        monkeypatch.setenv("NETGYM_EMULATOR_TOKEN", "s3cret")  # as the envapi has it
        env = EmulatorEnv("Plain", url)
        try:
            env.reset(seed=0)
            env.step(0)
        finally:
            env.close()


def test_an_instance_in_an_endless_loop_whose_client_left_is_killed(tmp_path: Path) -> None:
    with run_emulator(tmp_path, games_dir(tmp_path)) as (url, service):
        instance = start(url, "EndlessLoop").json()
        bridge = BridgeConnection(instance["host"], instance["port"], 0, 10.0, key=instance["key"])
        bridge.request(b"R")
        bridge.request(b"S")
        bridge.send(b"S")  # the script loops for ever in this step
        bridge.close()  # the client goes (a killed session, say)
        state = wait_for_the_end(url, instance["instance_id"], 15)
        assert "its client had gone, and FCEUX did not answer" in state.json()["error"]["message"]
        # Killed at once, reaped once it has exited.
        wait_for(lambda: instance["pid"] not in descendants(service.pid), 30)
        assert start(url).status_code == 201  # still serving


def test_an_env_refuses_an_instance_of_its_game_changed_since_it_was_made(tmp_path: Path) -> None:
    games = tmp_path / "games"
    folder = games / "changing"
    folder.mkdir(parents=True)
    manifest = FAULT_MANIFEST.format(name="Changing", rom=EFP_ROM)
    (folder / "game.toml").write_text(manifest)
    (folder / "game.lua").write_text(PLAIN_SCRIPT)
    with run_emulator(tmp_path, games) as (url, _):
        env = EmulatorEnv("Changing", url)
        try:
            # A RAM value more would shift every observation of the instances started now.
            (folder / "game.toml").write_text(manifest + "[observation.ram]\nlives = 0x10\n")
            with pytest.raises(EnvError, match=r"changed since this env was made \(ram, revision;"):
                env.reset(seed=0)
            assert httpx.get(f"{url}/v1/instances").json()["instances"] == []  # given back
            env.close()
            env = EmulatorEnv("Changing", url)
            assert env.observation_space["ram"].shape == (1,)
            env.reset(seed=0)
            # Only the reward changed: the spaces are the same, the game is not. The env's
            # next instance (after a crash, say) must not play it.
            env.release()
            (folder / "game.lua").write_text(PLAIN_SCRIPT.replace("return", "return --[[new]]"))
            with pytest.raises(EnvError, match=r"made \(revision; .*never mixes two versions"):
                env.reset(seed=0)
        finally:
            env.close()


def test_an_instance_whose_client_quit_says_so(tmp_path: Path) -> None:
    with run_emulator(tmp_path, games_dir(tmp_path)) as (url, _):
        instance = start(url).json()
        BridgeConnection(instance["host"], instance["port"], 0, 10.0, key=instance["key"]).close()
        message = wait_for_the_end(url, instance["instance_id"], 10).json()["error"]["message"]
        assert "its client asked it to quit" in message, message
        assert "unknown request" not in message


def test_an_instance_killed_by_a_signal_with_no_name_is_reaped(tmp_path: Path) -> None:
    # Its exit, not described, left it in the pool: every start failed after it.
    with run_emulator(tmp_path, games_dir(tmp_path)) as (url, _):
        instance = start(url).json()
        os.kill(instance["pid"], signal.SIGRTMIN + 1)
        message = wait_for_the_end(url, instance["instance_id"], 10).json()["error"]["message"]
        assert f"killed by signal {signal.SIGRTMIN + 1}" in message, message
        assert start(url).status_code == 201


def test_a_game_script_that_prints_every_step_cannot_fill_the_disk(tmp_path: Path) -> None:
    games = tmp_path / "games"
    folder = games / "chatty"
    folder.mkdir(parents=True)
    (folder / "game.toml").write_text(FAULT_MANIFEST.format(name="Chatty", rom=EFP_ROM))
    (folder / "game.lua").write_text(
        "local game = {}\n"
        "function game.step()\n"
        "  io.stdout:write(string.rep('x', 2 ^ 20), '\\n')\n"
        "  return 0, false, {}\n"
        "end\n"
        "return game\n"
    )
    work = tmp_path / "work"
    with run_emulator(tmp_path, games, work_dir=str(work)) as (url, _):
        instance = start(url, "Chatty").json()
        bridge = BridgeConnection(instance["host"], instance["port"], 0, 10.0, key=instance["key"])
        try:
            bridge.request(b"R", 0)
            log = work / instance["instance_id"] / "fceux.log"
            for _ in range(3):
                for _ in range(12):  # 12 MiB: more than the service keeps
                    bridge.request(b"S", 0)
                deadline = time.monotonic() + 10  # the service trims every second
                # Emptied, then the note written: a read may fall between the two.
                while log.stat().st_size >= LOG_LIMIT_BYTES or (
                    "earlier output dropped" not in log.read_text()
                ):
                    assert time.monotonic() < deadline, "the log is not trimmed with a note"
                    time.sleep(0.1)
        finally:
            bridge.close()


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        ('error("not ready yet")\n' + PLAIN_SCRIPT, r"no instance could start: .*not ready yet"),
        (
            PLAIN_SCRIPT.replace("return game", 'function game.reset() error("no reset") end\n')
            + "return game\n",
            r"Lua script failed: .*no reset",
        ),
    ],
    ids=["as-it-loads", "in-game-reset"],
)
def test_an_env_whose_script_failed_keeps_its_version_and_a_new_env_plays_the_fixed_one(
    tmp_path: Path, broken: str, error: str
) -> None:
    # An env adopting the fixed game would play another revision than its session,
    # its client and a ReconnectingVecEnv know of.
    games = tmp_path / "games"
    folder = games / "fixed"
    folder.mkdir(parents=True)
    (folder / "game.toml").write_text(FAULT_MANIFEST.format(name="Fixed", rom=EFP_ROM))
    (folder / "game.lua").write_text(broken)
    with run_emulator(tmp_path, games) as (url, _):
        env = EmulatorEnv("Fixed", url)
        try:
            with pytest.raises(EnvError, match=error):
                env.reset(seed=0)
            (folder / "game.lua").write_text(PLAIN_SCRIPT)
            with pytest.raises(EnvError, match=r"changed since this env was made.*make the env"):
                env.reset(seed=0)
        finally:
            env.close()
        fixed = EmulatorEnv("Fixed", url)
        try:
            fixed.reset(seed=0)
            fixed.step(0)
            assert fixed.revision != env.revision
        finally:
            fixed.close()


@pytest.mark.parametrize(
    ("script", "modules", "error"),
    [
        (
            'local helper = require("helpr")\n' + PLAIN_SCRIPT,
            {},
            r"game.lua:1: module 'helpr' not found: put helpr.lua in the game folder "
            r"\S+/games/loading, where require\(\) looks first",
        ),
        (  # a module of the game's that requires one that is missing: that one is named
            'local outer = require("outer")\n' + PLAIN_SCRIPT,
            {"outer.lua": 'return require("helpr")\n'},
            r"module 'helpr' not found: put helpr.lua in the game folder",
        ),
        (
            PLAIN_SCRIPT.replace("game.step", "game.Step"),
            {},
            r'must return a table with a step\(\) function: its table has "Step" '
            r"\(names are case-sensitive\)",
        ),
        (
            PLAIN_SCRIPT.replace("return game", "function game.Reset() end\nreturn game"),
            {},
            r"game\.lua names a function game\.Reset, which the bridge never calls: it calls "
            r"game\.reset \(names are case-sensitive\)",
        ),
        (
            PLAIN_SCRIPT.replace("return game", "function game.rest() end\nreturn game"),
            {},
            r"game\.lua names a function game\.rest, which the bridge never calls: it calls "
            r"game\.reset \(is it misspelled\?\)",
        ),
        (
            PLAIN_SCRIPT.replace("function game.step() return 0, false, {} end", "game.step = 0"),
            {},
            r"must return a table with a step\(\) function: its step is a number, not a function",
        ),
        (
            PLAIN_SCRIPT.replace("return game\n", ""),
            {},
            r"must return a table with a step\(\) function: it returned nothing "
            r"\(end the script with `return game`\)",
        ),
    ],
    ids=[
        "missing-module",
        "missing-in-a-module",
        "misnamed-step",
        "misnamed-reset",
        "misspelled-reset",
        "step-no-function",
        "returns-nothing",
    ],
)
def test_a_script_that_does_not_load_says_what_to_fix(
    tmp_path: Path, script: str, modules: dict[str, str], error: str
) -> None:
    games = one_game(tmp_path, "Loading", script)
    for name, text in modules.items():
        (games / "loading" / name).write_text(text)
    with (
        run_emulator(tmp_path, games) as (url, _),
        EmulatorEnv("Loading", url) as env,
        pytest.raises(EnvError, match=error) as caught,
    ):
        env.reset(seed=0)
    assert "/usr/" not in str(caught.value)  # none of Lua's own search paths
    assert "module 'outer'" not in str(caught.value)


class _SlowToDie:
    """An instance whose FCEUX has been killed and has not exited yet."""

    def __init__(self) -> None:
        self.exited = False
        self.waited = False

    def kill(self, wait: bool = True) -> bool:
        self.waited = self.waited or wait
        return wait or self.exited


def test_an_instance_given_back_is_killed_without_waiting_and_reaped_once_it_has_exited(
    tmp_path: Path,
) -> None:
    # FCEUX can take seconds to exit while other instances keep every core busy:
    # a DELETE must not hold its client (a session stepping other envs) that long.
    pool = InstancePool(EmulatorSettings(games_dir=tmp_path), display=lambda: ":0")
    slow = _SlowToDie()
    pool.instances["slow"] = slow  # type: ignore[assignment]
    pool.stop("slow")
    assert not slow.waited and pool.dying == [slow] and "slow" in pool.ended
    pool.reap()
    assert pool.dying == [slow]
    slow.exited = True
    pool.reap()
    assert pool.dying == []
    slower = _SlowToDie()
    pool.instances["slower"] = slower  # type: ignore[assignment]
    pool.stop_all()  # the service stopping waits for every one
    assert slower.waited and pool.dying == []


@pytest.mark.parametrize("seen", [True, False], ids=["seen-before", "unseen"])
def test_a_reset_right_after_its_instance_died_plays_on_a_new_one_as_if_it_had_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seen: bool
) -> None:
    """Seen dead before the reset or not (a race): the same no-ops, no error."""
    with run_emulator(tmp_path, one_game(tmp_path, "Plain", PLAIN_SCRIPT, noop_max=30)) as (url, _):
        with EmulatorEnv("Plain", url) as reference:
            reference.reset(seed=5)
            reference.step(0)
            expected = [reference.reset()[1]["noops"] for _ in range(3)]
        assert len(set(expected)) > 1  # else this test could not tell
        with EmulatorEnv("Plain", url) as env:
            env.reset(seed=5)
            env.step(0)
            killed = env.instance_id
            pid = httpx.get(f"{url}/v1/instances/{killed}").json()["pid"]
            os.kill(pid, signal.SIGKILL)
            bridge = env._bridge
            assert bridge is not None
            deadline = time.monotonic() + 10
            while not bridge.peer_closed():
                assert time.monotonic() < deadline
                time.sleep(0.05)
            if not seen:
                monkeypatch.setattr(bridge, "peer_closed", lambda: False)
            assert [env.reset()[1]["noops"] for _ in range(3)] == expected
            assert env.instance_id != killed


def test_an_instance_whose_caller_left_before_its_reply_is_stopped_at_once(
    tmp_path: Path,
) -> None:
    """A session ended (or killed) while its instance started: no one can stop that
    instance, and it held a slot until its attach timeout, or its start's end."""
    games = games_dir(tmp_path)
    slow = games / "slow-start"  # its start takes 20 s: stopped as it starts
    slow.mkdir()
    (slow / "game.toml").write_text(FAULT_MANIFEST.format(name="SlowStart", rom=EFP_ROM))
    (slow / "game.lua").write_text('require("socket").sleep(20)\n' + PLAIN_SCRIPT)
    with run_emulator(tmp_path, games, log_level="info", attach_timeout_s="60") as (url, service):
        port = int(url.rsplit(":", 1)[1])
        body = b'{"game": "SlowStart"}'
        with socket.create_connection(("127.0.0.1", port)) as caller:
            caller.sendall(
                b"POST /v1/instances HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            deadline = time.monotonic() + 30
            while "fceux" not in process_names(service.pid).values():  # it is starting
                assert time.monotonic() < deadline
                time.sleep(0.005)
            assert httpx.get(f"{url}/v1/health").json()["starting"] == 1
        log = next(tmp_path.glob("emulator-*.log"))
        deadline = time.monotonic() + 10
        while "its caller left before the reply" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert httpx.get(f"{url}/v1/instances").json() == {"instances": [], "starting": 0}
        while "fceux" in process_names(service.pid).values():
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_a_stopped_service_leaves_no_display_socket_or_lock(tmp_path: Path) -> None:
    with run_emulator(tmp_path, games_dir(tmp_path)) as (url, process):
        assert start(url).status_code == 201
        [xvfb] = [pid for pid, name in process_names(process.pid).items() if name == "Xvfb"]
        [socket_file] = _listening_socket_files(xvfb)
        assert socket_file.startswith("/tmp/.X11-unix/X")
        files = [Path(socket_file), Path(f"/tmp/.X{socket_file[16:]}-lock")]  # the lock, if any
    assert not any(file.exists() for file in files), files


def _listening_socket_files(pid: int) -> list[str]:
    """The paths of the Unix sockets that process ``pid`` has open (not abstract ones)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            if (target := os.readlink(fd)).startswith("socket:["):
                inodes.add(target[8:-1])
    rows = [line.split() for line in Path("/proc/net/unix").read_text().splitlines()[1:]]
    return [row[7] for row in rows if len(row) > 7 and row[6] in inodes and row[7][0] == "/"]


# Whether a game script runs this for the first time, across instances.
FIRST_TIME_LUA = """\
local function first_time(name)
  local marker = io.open(GAME_DIR .. "/" .. name)
  if marker ~= nil then
    marker:close()
    return false
  end
  io.open(GAME_DIR .. "/" .. name, "w"):close()
  return true
end
"""
FAILS_ONCE_SCRIPT = (
    FIRST_TIME_LUA
    + """\
local game = {}
function game.reset()
  if first_time("failed-once") then error("the first reset fails") end
end
function game.step() return 0, false, {} end
return game
"""
)


def test_a_failed_reset_gives_its_no_op_draw_back(tmp_path: Path) -> None:
    """The next reset draws what the failed one drew, as if it had not been."""
    with run_emulator(
        tmp_path, one_game(tmp_path, "FailsOnce", FAILS_ONCE_SCRIPT, noop_max=30)
    ) as (url, _):
        with EmulatorEnv("FailsOnce", url) as env:
            with pytest.raises(EnvError, match="the first reset fails"):
                env.reset(seed=5)
            noops = env.reset()[1]["noops"]
        with EmulatorEnv("FailsOnce", url) as reference:
            first, second = (reference.reset(seed=5)[1]["noops"], reference.reset()[1]["noops"])
    assert first != second  # else this test could not tell
    assert noops == first


DIES_IN_ITS_SECOND_RESET_SCRIPT = (
    FIRST_TIME_LUA
    + """\
local game = {}
function game.reset()
  if first_time("reset-once") then return end
  local deaths = io.open(GAME_DIR .. "/deaths.txt", "a")
  deaths:write("died\\n")
  deaths:close()
  local started = os.clock()
  while os.clock() - started < 1 do end  -- a second in game.reset(), then FCEUX dies
  local stat = io.open("/proc/self/stat")
  local pid = stat:read("*n")
  stat:close()
  os.execute("kill -KILL " .. pid)
end
function game.step() return 0, false, {} end
return game
"""
)


def test_an_instance_that_dies_in_game_reset_is_not_tried_again(tmp_path: Path) -> None:
    """Only an instance found gone at once (dead before the reset) is replaced within
    the reset: the timeout is for one game.reset(), not two."""
    games = one_game(tmp_path, "DiesInReset", DIES_IN_ITS_SECOND_RESET_SCRIPT)
    with run_emulator(tmp_path, games) as (url, _), EmulatorEnv("DiesInReset", url) as env:
        env.reset(seed=0)
        with pytest.raises(EnvError) as raised:
            env.reset(seed=0)
        assert raised.value.details["instance_lost"] is True
    assert (games / "diesinreset" / "deaths.txt").read_text() == "died\n"
