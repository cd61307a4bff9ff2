"""The time and memory a game script's call may take: an error at its line, in time."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from netgym.emulator.env import EmulatorEnv
from netgym.errors import EnvError
from tests.emulator.conftest import PLAIN_SCRIPT, one_game
from tests.servers import run_emulator

LOOPING_SCRIPT = """\
local game = {}
local steps = 0
function game.step()
  steps = steps + 1
  while steps == 2 do pcall(function() while true do local _ = memory.readbyte(0) end end) end
  return 0, false, {}
end
function game.reset()
  steps = 0
  while LOOP_IN_RESET do end
end
return game
"""


def test_an_endless_loop_in_a_script_is_an_error_with_its_line_in_time(tmp_path: Path) -> None:
    games = one_game(tmp_path, "Looping", LOOPING_SCRIPT)
    with (
        run_emulator(tmp_path, games, log_level="info") as (url, _),
        EmulatorEnv("Looping", url, timeout_s=3) as env,
    ):
        env.reset(seed=0)
        env.step(0)
        # Stopped a little before the env's timeout_s, so that the client hears of it.
        looping = r"game\.lua:5: game\.step\(\) has run for more than 2\.5 s, the time its client"
        with pytest.raises(EnvError, match=looping):
            env.step(0)
        env.reset(seed=0)  # a new episode plays on
        env.step(0)
    log = next(tmp_path.glob("emulator-*.log")).read_text()
    assert re.search(r"Looping \w+: error: \S*" + looping, log)  # where its author looks


def test_an_endless_loop_in_game_reset_is_an_error_with_its_line(tmp_path: Path) -> None:
    games = one_game(tmp_path, "Looping", "LOOP_IN_RESET = true\n" + LOOPING_SCRIPT)
    looping = r"game\.lua:11: game\.reset\(\) has run for more than 2\.5 s"
    with (
        run_emulator(tmp_path, games) as (url, _),
        EmulatorEnv("Looping", url, timeout_s=3) as env,
        pytest.raises(EnvError, match=looping),
    ):
        env.reset(seed=0)


HOARDING_SCRIPT = """\
local game = {}
local kept = {}
function game.step()
  kept[#kept + 1] = string.rep("x", 1000000) .. #kept  -- a megabyte more every step
  return 0, false, {}
end
function game.reset()
  while HOARD_IN_RESET do kept[#kept + 1] = string.rep("y", 100000) .. #kept end
end
return game
"""


def test_a_script_that_holds_too_much_memory_is_an_error(tmp_path: Path) -> None:
    games = one_game(tmp_path, "Hoarding", HOARDING_SCRIPT)
    with (
        run_emulator(tmp_path, games, script_memory_mb="20") as (url, _),
        EmulatorEnv("Hoarding", url) as env,
    ):
        env.reset(seed=0)
        with pytest.raises(EnvError) as caught:
            for _ in range(40):
                env.step(0)
        message = caught.value.message
        assert re.search(
            r"game\.lua:3: game\.step\(\) holds 2[1-9] MB of Lua memory, over the 20 MB", message
        )
        assert "NETGYM_EMULATOR_SCRIPT_MEMORY_MB" in message
        env.reset(seed=0)  # a new instance, which holds nothing yet
        env.step(0)


def test_a_script_that_takes_memory_in_a_loop_is_stopped_at_its_line(tmp_path: Path) -> None:
    games = one_game(tmp_path, "Hoarding", "HOARD_IN_RESET = true\n" + HOARDING_SCRIPT)
    with (
        run_emulator(tmp_path, games, script_memory_mb="50") as (url, _),
        EmulatorEnv("Hoarding", url) as env,
        pytest.raises(EnvError, match=r"game\.lua:9: game\.reset\(\) holds \d+ MB of Lua memory"),
    ):
        env.reset(seed=0)


@pytest.mark.parametrize(
    ("script", "error"),
    [
        (  # a loop in a coroutine: Lua hooks each thread apart
            "function game.step() coroutine.wrap(function() while true do end end)() end",
            r"game\.lua:2: game\.step\(\) has run for more than 2\.5 s",
        ),
        (  # one made as the script loads, resumed again and again
            "local co = coroutine.create(function() while true do end end)\n"
            "function game.step() while true do coroutine.resume(co) end end",
            r"game\.lua:[23]: game\.step\(\) has run for more than 2\.5 s",
        ),
        (  # a __tostring of its own, which the bridge would call to say what is wrong
            "local forever = {__tostring = function() while true do end end}\n"
            "function game.step() return setmetatable({}, forever), false end",
            r"as its reward, not a table with a metatable",
        ),
        (  # the stop seen first in a coroutine, then a pcall loop in the main thread
            "local function work() for _ = 1, 1000 do end end\n"
            "function game.step()\n"
            "  pcall(coroutine.wrap(function() while true do end end))\n"
            "  while true do pcall(work) end\n"
            "end",
            r"game\.lua:[25]: game\.step\(\) has run for more than 2\.5 s",
        ),
        (  # an error value whose __tostring loops, raised where no line of the script's is
            "local bad = setmetatable({}, {__tostring = function() while true do end end})\n"
            "local raise = coroutine.wrap(function() error(bad) end)\n"
            "function game.step() return raise() end",
            r"game\.step\(\) raised a table as its error.*has run for more than 2\.5 s",
        ),
    ],
    ids=["coroutine", "coroutine-made-at-load", "tostring", "pcall-after-coroutine", "tail-call"],
)
def test_a_script_cannot_get_past_its_time_limit(tmp_path: Path, script: str, error: str) -> None:
    games = one_game(tmp_path, "Escaping", f"local game = {{}}\n{script}\nreturn game\n")
    with (
        run_emulator(tmp_path, games) as (url, _),
        EmulatorEnv("Escaping", url, timeout_s=3) as env,
    ):
        env.reset(seed=0)
        with pytest.raises(EnvError, match=error):
            env.step(0)


def test_a_script_may_not_take_the_time_limits_hook(tmp_path: Path) -> None:
    script = "debug.sethook()\n" + PLAIN_SCRIPT
    games = one_game(tmp_path, "Unhooking", script)
    with (
        run_emulator(tmp_path, games) as (url, _),
        EmulatorEnv("Unhooking", url) as env,
        pytest.raises(EnvError, match=r"game\.lua:1: debug\.sethook\(\) is the bridge's"),
    ):
        env.reset(seed=0)


def test_one_allocation_too_large_for_the_instance_is_an_error(tmp_path: Path) -> None:
    script = PLAIN_SCRIPT.replace(
        "function game.step()", 'function game.step() local s = string.rep("x", 2^30)'
    )
    games = one_game(tmp_path, "Huge", script)
    with (
        run_emulator(tmp_path, games, script_memory_mb="20") as (url, _),
        EmulatorEnv("Huge", url) as env,
    ):
        env.reset(seed=0)
        with pytest.raises(EnvError, match=r"game\.lua:2: game\.step\(\) asked for more memory"):
            env.step(0)
        env.reset(seed=0)
        assert env.instance_id is not None  # the instance lived on


@pytest.mark.parametrize(
    ("top_level", "settings", "error"),
    [
        (
            "while true do end\n",
            {},
            r"game\.lua:1: the script's top level \(outside its functions\) has run for more "
            r"than 2\.5 s",
        ),
        (
            "local kept = {}\n"
            'while true do kept[#kept + 1] = string.rep("z", 100000) .. #kept end\n',
            {"script_memory_mb": "50"},
            r"game\.lua:2: the script's top level \(outside its functions\) holds \d+ MB of Lua "
            r"memory, over the 50 MB",
        ),
    ],
    ids=["endless-loop", "growing-table"],
)
def test_a_script_whose_top_level_runs_away_is_stopped_at_its_line(
    tmp_path: Path, top_level: str, settings: dict[str, str], error: str
) -> None:
    games = one_game(tmp_path, "Runaway", top_level + PLAIN_SCRIPT)
    with (
        run_emulator(tmp_path, games, **settings) as (url, _),
        EmulatorEnv("Runaway", url, timeout_s=3) as env,
        pytest.raises(EnvError, match=error),
    ):
        env.reset(seed=0)
