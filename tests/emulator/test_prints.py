"""A game script's print() and errors: in the emulator service's log, never a flood."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import httpx
import pytest

from netgym.emulator.env import EmulatorEnv
from netgym.errors import EnvError
from netgym_emulator.output import (
    ERROR_MARK,
    PRINT_CHARS,
    PRINT_MARK,
    PRINTS_PER_PASS,
    FceuxOutput,
)
from tests.emulator.conftest import PLAIN_SCRIPT, one_game
from tests.servers import run_emulator

PRINTING_SCRIPT = """\
print("loaded", 1, nil)
print("two\\r\\nlines")
local game = {}
local steps = 0
function game.step()
  steps = steps + 1
  if steps > 3 then error("boom on purpose") end
  print("step", 2.5, true)
  return 0, false, {}
end
return game
"""

CLOBBERING_SCRIPT = """\
local game = {}
function game.step()
  select, tostring, print, pcall, pairs, unpack = nil, nil, nil, nil, nil, nil
  type, string, math = memory.readbyte(0x30), nil, nil  -- a `local` forgotten
  error(setmetatable({}, {__tostring = function() error("not shown") end}))
end
return game
"""


def test_a_game_scripts_prints_and_errors_reach_the_services_log(tmp_path: Path) -> None:
    games = one_game(tmp_path, "Printing", PRINTING_SCRIPT)
    # Closed before the service stops: what it printed last is passed on as it goes.
    with (
        run_emulator(tmp_path, games, log_level="info") as (url, _),
        EmulatorEnv("Printing", url) as env,
    ):
        env.reset(seed=0)
        for _ in range(3):
            env.step(0)
        instance_id = env.instance_id
        for path in ("/v1/health", "/v1/games"):  # as Docker and the envapi poll them
            httpx.get(url + path, timeout=30).raise_for_status()
        with pytest.raises(EnvError, match="boom on purpose"):
            env.step(0)
    log = next(tmp_path.glob("emulator-*.log")).read_text()
    source = f"netgym.emulator.game Printing {instance_id}:"
    assert f"{source} loaded\t1\tnil" in log
    assert f"{source} two\n" in log and f"{source} lines\n" in log
    assert log.count(f"{source} step\t2.5\ttrue") == 3
    # An error of the script's too, after what it printed before it.
    assert f"{source} error: " in log and "game.lua:7: boom on purpose" in log
    assert log.index(f"{source} error: ") > log.rindex(f"{source} step")
    assert "Emulation speed" not in log  # FCEUX's own output stays in its file
    # The polls are left out of the access log, which would be mostly them.
    assert '"POST /v1/instances HTTP/1.1" 201' in log
    assert '"GET /v1/health HTTP' not in log and '"GET /v1/games HTTP' not in log


def test_output_is_passed_on_in_whole_lines_and_a_flood_is_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "fceux.log"
    output = FceuxOutput(path, "Game 1")
    many = PRINTS_PER_PASS + 5
    path.write_text(
        "FCEUX's own line\n"
        + "".join(f"{PRINT_MARK}line {i}\n" for i in range(many))
        + f"{PRINT_MARK}half a li"
    )
    with caplog.at_level(logging.INFO, logger="netgym.emulator.game"):
        output.pass_on()
        messages = [record.getMessage() for record in caplog.records]
        assert "more printed than shown (5 lines" in messages[0]
        assert messages[1:] == [f"Game 1: line {i}" for i in range(5, many)]  # the last ones
        caplog.clear()
        with path.open("a") as file:
            file.write("ne\n")
        output.pass_on()
        assert [record.getMessage() for record in caplog.records] == ["Game 1: half a line"]
        caplog.clear()
        path.write_text(f"{PRINT_MARK}after it was emptied\n")
        output.pass_on()
        assert [record.getMessage() for record in caplog.records] == [
            "Game 1: after it was emptied"
        ]


def test_an_error_is_passed_on_whole_even_after_a_flood_of_prints(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "fceux.log"
    many = PRINTS_PER_PASS + 5
    path.write_text(
        "".join(f"{PRINT_MARK}line {i}\n" for i in range(many))
        + "progress: 50%"  # io.write() with no line end: the error's mark follows it
        + "".join(f"{ERROR_MARK}traceback line {i}\n" for i in range(many))
        + "".join(f"{PRINT_MARK}after a reset {i}\n" for i in range(many))  # the same second
    )
    with caplog.at_level(logging.INFO, logger="netgym.emulator.game"):
        FceuxOutput(path, "Game 1").pass_on()
    messages = [record.getMessage() for record in caplog.records]
    assert [m for m in messages if "error:" in m] == [
        f"Game 1: error: traceback line {i}" for i in range(many)
    ]
    # The prints just before the error, what its author needs, not those after it.
    assert [m for m in messages if m.startswith("Game 1: line")] == [
        f"Game 1: line {i}" for i in range(5, many)
    ]
    assert not [m for m in messages if "after a reset" in m]
    assert f"more printed than shown ({5 + many} lines" in messages[0]


def test_a_script_that_undid_the_globals_the_bridge_uses_still_gets_its_errors_out(
    tmp_path: Path,
) -> None:
    games = one_game(tmp_path, "Clobbering", CLOBBERING_SCRIPT)
    with (
        run_emulator(tmp_path, games, log_level="info") as (url, _),
        EmulatorEnv("Clobbering", url) as env,
    ):
        env.reset(seed=0)
        fails = r"game\.lua:5: game\.step\(\) raised a table .*tostring\(\) fails on: .*not shown"
        with pytest.raises(EnvError, match=fails) as raised:
            env.step(0)
        assert raised.value.details["instance_lost"] is False
    log = next(tmp_path.glob("emulator-*.log")).read_text()
    assert "as its error, not a message: an error whose value tostring() fails on: " in log


LIBRARY_CHANGING_SCRIPT = """\
local game = {}
function game.step()
  string.format, string.char, table.concat, math.floor = nil, nil, nil, nil
  function gui.gdscreenshot() return "" end
  function memory.readbyte() error("the script's own readbyte") end
  return 1.5, false, {k = 2}
end
return game
"""


def test_a_script_that_changed_the_libraries_it_shares_with_the_bridge_plays_on(
    tmp_path: Path,
) -> None:
    games = one_game(tmp_path, "Changing", LIBRARY_CHANGING_SCRIPT)
    with run_emulator(tmp_path, games) as (url, _), EmulatorEnv("Changing", url) as env:
        env.reset(seed=0)
        for _ in range(3):
            observation, reward, _, _, info = env.step(0)
            assert (reward, info["k"]) == (1.5, 2)
            assert observation.shape == (240, 256, 3) and observation.any()


def test_a_script_that_does_not_load_is_in_the_services_log(tmp_path: Path) -> None:
    games = one_game(tmp_path, "NoLoad", 'local game = require("missing_helper")\nreturn game\n')
    with (
        run_emulator(tmp_path, games) as (url, _),
        EmulatorEnv("NoLoad", url) as env,
        pytest.raises(EnvError, match="missing_helper"),
    ):
        env.reset(seed=0)
    log = next(tmp_path.glob("emulator-*.log")).read_text()
    assert "NoLoad: no instance could start: " in log and "missing_helper" in log


def test_a_long_line_is_passed_on_shortened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "fceux.log"
    path.write_text(f"{PRINT_MARK}{'x' * (PRINT_CHARS + 5)}\n")
    with caplog.at_level(logging.INFO, logger="netgym.emulator.game"):
        FceuxOutput(path, "Game 1").pass_on()
    assert caplog.records[0].getMessage() == f"Game 1: {'x' * PRINT_CHARS}... (5 more characters)"


def test_passing_on_the_output_of_an_instance_whose_folder_is_gone_does_nothing(
    tmp_path: Path,
) -> None:
    FceuxOutput(tmp_path / "gone" / "fceux.log", "Game 1").pass_on()


@pytest.mark.parametrize(
    ("raised", "shown"), [("{code = 3}", r"a table .*: {code=3}$"), ("nil", "a nil .*: nil$")]
)
def test_an_error_that_is_not_a_message_gets_its_line(
    tmp_path: Path, raised: str, shown: str
) -> None:
    script = PLAIN_SCRIPT.replace("function game.step()", f"function game.step() error({raised})")
    games = one_game(tmp_path, "Raising", script)
    with (
        run_emulator(tmp_path, games) as (url, _),
        EmulatorEnv("Raising", url) as env,
    ):
        env.reset(seed=0)
        with pytest.raises(EnvError) as caught:
            env.step(0)
        where = rf"game\.lua:2: game\.step\(\) raised {shown}"
        assert re.search(where, caught.value.details["lua_error"])
