from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import EnvApi, run_emulator, run_envapi

REPO_GAMES = Path(__file__).resolve().parents[2] / "games"
EFP_ROM = Path("/usr/share/nes/efp.nes")

FAULT_MANIFEST = """\
name = "{name}"
[rom]
file = "{rom}"
[script]
file = "game.lua"
[actions]
combos = [ {{ name = "noop", buttons = [] }}, {{ name = "up", buttons = ["up"] }} ]
[observation]
screen = true
[start]
buttons = [ {{ wait = 20 }}, {{ press = ["start"], frames = 1 }}, {{ wait = 20 }} ]
"""
LUA_ERROR_SCRIPT = """\
local game = {}
local steps = 0
function game.reset() steps = 0 end
function game.step()
  steps = steps + 1
  if steps >= 3 then error("boom on purpose") end
  return 0, false, {steps = steps}
end
return game
"""
BAD_RETURN_SCRIPT = """\
local game = {}
local steps = 0
function game.reset() steps = 0 end
function game.step()
  steps = steps + 1
  if steps == 1 then return 1, false, {flag = true} end
  return 0, 0, {}  -- done must be a boolean: 0 is true in Lua
end
return game
"""
NUL_KEY_SCRIPT = """\
local game = {}
function game.step() return 0, false, {["a\\0b"] = 1} end
return game
"""
RESERVED_KEY_SCRIPT = """\
local game = {}
function game.step() return 0, false, {score = 1, %s = 1} end
return game
"""
STRING_REWARD_SCRIPT = 'local game = {}\nfunction game.step() return "1", false end\nreturn game\n'
NAN_REWARD_SCRIPT = """\
local game = {}
function game.step() return 0 / 0, false, {} end
return game
"""
HOOK_SCRIPT = """\
local game = {}
emu.registerafter(function() end)  -- the bridge answers from this hook
function game.step() return 0, false, {} end
return game
"""
ENDLESS_LOOP_SCRIPT = """\
local game = {}
local steps = 0
function game.reset() steps = 0 end
function game.step()
  steps = steps + 1
  while steps >= 2 do end
  return 0, false, {}
end
return game
"""
# A script that hangs where no Lua hook reaches it (in C, from its second step).
SLEEPING_SCRIPT = ENDLESS_LOOP_SCRIPT.replace(
    "while steps >= 2 do end", 'if steps >= 2 then require("socket").sleep(60) end'
)
# A script that uses a module of its own folder, and a file in it.
REQUIRE_SCRIPT = """\
local helper = require("helper")
local game = {}
local file = io.open(GAME_DIR .. "/data.txt")
local data = tonumber(file:read("*l"))
file:close()
function game.step() return helper.reward(), false, {data = data} end
return game
"""
PLAIN_SCRIPT = "local game = {}\nfunction game.step() return 0, false, {} end\nreturn game\n"
# A callback on writes to the zero page.
CALLBACK_SCRIPT = """\
local game = {}
local writes = 0
memory.registerwrite(0x0000, 0x100, function() writes = writes + 1 end)
function game.step() return 0, false, {} end
return game
"""

# A script that plays frames itself, as the bridge does.
FRAMES_SCRIPT = """\
local game = {}
function game.reset() emu.frameadvance() end
function game.step() return 0, false, {} end
return game
"""


@dataclass
class Stack:
    emulator_url: str
    envapi: EnvApi
    games: Path

    @property
    def kwargs(self) -> dict[str, str | None]:
        return {"url": self.envapi.url, "token": self.envapi.token}


def one_game(root: Path, name: str, script: str, noop_max: int = 0) -> Path:
    """A games folder with the game ``name`` alone: Escape from Pong's ROM, ``script``
    its Lua script, resets drawing 0 to ``noop_max`` no-op frames."""
    folder = root / "games" / name.lower()
    folder.mkdir(parents=True)
    manifest = FAULT_MANIFEST.format(name=name, rom=EFP_ROM) + f"noop_max = {noop_max}\n"
    (folder / "game.toml").write_text(manifest)  # noop_max in [start], the last table
    (folder / "game.lua").write_text(script)
    return folder.parent


def games_dir(root: Path) -> Path:
    """The repo's games plus small ones for fault tests (one broken), in one folder."""
    games = root / "games"
    games.mkdir()
    for folder in REPO_GAMES.iterdir():
        if (folder / "game.toml").is_file():
            (games / folder.name).symlink_to(folder)
    for name, script in (
        ("LuaError", LUA_ERROR_SCRIPT),
        ("BadReturn", BAD_RETURN_SCRIPT),
        ("NanReward", NAN_REWARD_SCRIPT),
        ("StringReward", STRING_REWARD_SCRIPT),
        ("NulKey", NUL_KEY_SCRIPT),
        ("EpisodeKey", RESERVED_KEY_SCRIPT % "episode"),
        ("MaskKey", RESERVED_KEY_SCRIPT % "_score"),
        ("TakesHook", HOOK_SCRIPT),
        ("Plain", PLAIN_SCRIPT),
        ("EndlessLoop", ENDLESS_LOOP_SCRIPT),
        ("Sleeping", SLEEPING_SCRIPT),
        ("Callbacks", CALLBACK_SCRIPT),
        ("PlaysFrames", FRAMES_SCRIPT),
        ("OldPlaysFrames", "FCEU.frameadvance()  -- FCEUX's old name for emu\n" + PLAIN_SCRIPT),
        ("Exits", PLAIN_SCRIPT.replace("function game.step()", "function game.step() os.exit(3)")),
        (
            "Pauses",
            PLAIN_SCRIPT.replace("function game.step()", "function game.step() emu.pause()"),
        ),
    ):
        folder = games / name.lower()
        folder.mkdir()
        (folder / "game.toml").write_text(FAULT_MANIFEST.format(name=name, rom=EFP_ROM))
        (folder / "game.lua").write_text(script)
    # ';' and '?' in its path: what Lua's package.path separates and replaces.
    requires = games / "requires; what?"
    requires.mkdir()
    (requires / "game.toml").write_text(FAULT_MANIFEST.format(name="Requires", rom=EFP_ROM))
    (requires / "game.lua").write_text(REQUIRE_SCRIPT)
    (requires / "helper.lua").write_text("return { reward = function() return 7 end }\n")
    (requires / "data.txt").write_text("42\n")
    broken = games / "unnamed-folder"  # a game folder with a problem: its ROM is missing
    broken.mkdir()
    (broken / "game.toml").write_text(FAULT_MANIFEST.format(name="Broken", rom="missing.nes"))
    (broken / "game.lua").write_text(PLAIN_SCRIPT)
    return games


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The emulator service and an envapi that serves its games, as real processes."""
    if shutil.which("fceux") is None and not Path("/usr/games/fceux").exists():
        pytest.skip("FCEUX is not installed (scripts/setup.sh installs it)")
    root = tmp_path_factory.mktemp("emulator")
    games = games_dir(root)
    with (
        run_emulator(root, games) as (emulator_url, _),
        run_envapi(root, emulator_url=emulator_url) as envapi,
    ):
        yield Stack(emulator_url, envapi, games)
