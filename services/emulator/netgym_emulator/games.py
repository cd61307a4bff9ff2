"""Game folders: read and check a manifest, its ROM and its Lua script.

A game is a folder under ``games/`` with ``game.toml`` (docs/games.md). Every
problem is a ``GameError`` naming the file, the line where there is one, and
what to do, so that a user fixes a game without reading this code.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import re
import shutil
import subprocess
import tomllib
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from netgym.errors import NetgymError

BUTTONS = ("a", "b", "select", "start", "up", "down", "left", "right")
MANIFEST = "game.toml"
# The first bytes of the formats FCEUX loads: iNES, UNIF, NSF, and a zip or gzip
# of any of them. Not FDS: FCEUX needs the Famicom Disk System's BIOS for it,
# which no game folder can give an instance.
_ROM_MAGICS = (
    b"NES\x1a",
    b"UNIF",
    b"NESM\x1a",
    b"PK\x03\x04",
    b"\x1f\x8b",
)
ROM_SUFFIXES = (".nes", ".unf", ".unif", ".nsf")
# A folder with no manifest that holds one of these is listed as a game missing it.
_GAME_FILE_SUFFIXES = (*ROM_SUFFIXES, ".fds", ".zip", ".gz", ".lua", ".toml")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# The keys a manifest may set, by table (None: the top level). Any other key is
# a typo that would otherwise be ignored without a word.
_KEYS: dict[str | None, tuple[str, ...]] = {
    None: ("name", "description", "rom", "script", "actions", "observation", "start", "episode"),
    "rom": ("file", "sha256", "source", "build"),
    "script": ("file",),
    "actions": ("combos", "type", "frames_per_step"),
    "observation": ("screen", "ram"),
    "start": ("buttons", "savestate", "noop_max"),
    "episode": ("max_steps",),
}
_COMBO_KEYS = ("name", "buttons")
_START_STEP_KEYS = ("wait", "press", "frames")
# A reset plays the no-ops within the env's step timeout (10 s by default), and an
# instance plays its start sequence within the service's start timeout (30 s):
# FCEUX plays a few thousand frames a second.
MAX_NOOPS = 1_000
MAX_START_FRAMES = 20_000
_T = TypeVar("_T")


class GameError(NetgymError):
    """A game folder is broken: the message names the file, the line and the fix."""

    code = "game_error"
    http_status = 422


@dataclass(frozen=True)
class Combo:
    """A named button combination: one action of a Discrete action space."""

    name: str
    buttons: tuple[str, ...]

    @property
    def mask(self) -> int:
        return sum(1 << BUTTONS.index(b) for b in self.buttons)


@dataclass(frozen=True)
class Game:
    """A checked game folder."""

    name: str
    folder: Path
    description: str
    rom: Path
    script: Path
    combos: tuple[Combo, ...] | None  # None: the 8 buttons as MultiBinary
    frames_per_step: int
    screen: bool
    ram: dict[str, int] = field(default_factory=dict)
    start: tuple[dict[str, Any], ...] = ()
    savestate: Path | None = None
    noop_max: int = 0
    max_steps: int | None = None
    revision: str = ""  # changes with any file that makes the game (see revision_of)

    @property
    def state_name(self) -> str:
        """The name FCEUX files this ROM's save states under (``<name>.fc0``).

        It is the loaded ROM's name less its suffix: for a zip, the ROM inside it.
        """
        if zipfile.is_zipfile(self.rom):
            with zipfile.ZipFile(self.rom) as archive:
                inside = [n for n in archive.namelist() if Path(n).suffix.lower() in ROM_SUFFIXES]
            if inside:
                return Path(inside[0]).stem
        return self.rom.stem

    @property
    def env_id(self) -> str:
        return f"netgym/{self.name}-v0"

    @property
    def start_sequence(self) -> str:
        """The start sequence as the bridge reads it: ``w60,p8:1`` (wait 60, hold start 1)."""
        parts = []
        for step in self.start:
            if "wait" in step:
                parts.append(f"w{step['wait']}")
            else:
                mask = sum(1 << BUTTONS.index(b) for b in step["press"])
                parts.append(f"p{mask}:{step.get('frames', 1)}")
        return ",".join(parts)

    def spec(self) -> dict[str, Any]:
        """What an env needs to know: its spaces, limits and how to reset."""
        return {
            "name": self.name,
            "env_id": self.env_id,
            "description": self.description,
            "actions": [
                {"name": c.name, "buttons": list(c.buttons), "mask": c.mask} for c in self.combos
            ]
            if self.combos is not None
            else None,
            "buttons": list(BUTTONS),
            "frames_per_step": self.frames_per_step,
            "screen": self.screen,
            "ram": list(self.ram),
            "noop_max": self.noop_max,
            "max_steps": self.max_steps,
            "revision": self.revision,
        }


def _fail(path: Path, problem: str, fix: str, line: int | None = None) -> GameError:
    where = f"{path}:{line}" if line else str(path)
    return GameError(f"{where}: {problem}; {fix}", details={"file": str(path), "line": line})


def _line_of(text: str, key: str, section: str | None = None) -> int | None:
    """The line that sets ``key`` (or opens ``[key]``), in ``[section]`` if given."""
    in_section = section is None
    for number, line in enumerate(text.splitlines(), start=1):
        if section is not None and line.strip().startswith("["):
            in_section = line.strip() == f"[{section}]"
        elif not in_section:
            continue
        if re.match(rf"\s*{re.escape(key)}\s*=", line) or line.strip() == f"[{key}]":
            return number
    return None


def _toml(value: Any, hex_ints: bool = False) -> str:
    """A manifest value written as in TOML (``"a"``, ``true``, ``{ wait = 5 }``), for messages."""
    if hex_ints and isinstance(value, int) and not isinstance(value, bool):
        return hex(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def _unknown_key(table: dict[str, Any], allowed: tuple[str, ...]) -> tuple[str, str] | None:
    """The first key of ``table`` not in ``allowed``, and what to write instead."""
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            return key, (f"did you mean {close[0]}?" if close else f"use {', '.join(allowed)}")
    return None


def _natural(value: Any, low: int, high: int) -> bool:
    """Whether ``value`` is a whole number in ``low..high`` (TOML's true is no number)."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _buttons(path: Path, raw: Any, where: str, line: int | None) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(b, str) for b in raw):
        raise _fail(path, f"{where} must be a list of button names", f"use {list(BUTTONS)}", line)
    unknown = [b for b in raw if b.lower() not in BUTTONS]
    if unknown:
        raise _fail(path, f"{where} names unknown buttons {unknown}", f"use {list(BUTTONS)}", line)
    return tuple(b.lower() for b in raw)


def load_game(folder: Path) -> Game:
    """Read and check one game folder.

    Raises:
        GameError: for a missing or bad manifest, ROM or script; every problem
            found at once, one to a line, where there are several.
    """
    path = folder / MANIFEST
    if not path.is_file():
        raise _fail(path, "no manifest", "add game.toml (see docs/games.md)")
    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise _fail(
            path, f"not valid TOML ({exc})", "fix the syntax", int(line.group(1)) if line else None
        ) from None

    def section(name: str) -> dict[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise _fail(
                path, f"[{name}] must be a table", "see docs/games.md", _line_of(text, name)
            )
        if unknown := _unknown_key(value, _KEYS[name]):
            key, fix = unknown
            raise _fail(path, f"unknown key {key!r} in [{name}]", fix, _line_of(text, key, name))
        return value

    problems = _Problems(path)
    for key in data:
        problems.check(partial(_check_top_level_key, path, text, data, key))
    # A table whose name is misspelled ([action]) is that one problem, not two.
    misspelled = {
        close[0]
        for key in data
        if key not in _KEYS[None]
        and (close := difflib.get_close_matches(key, _KEYS[None], n=1, cutoff=0.6))
    }

    def table(name: str) -> dict[str, Any]:
        if name in misspelled:
            raise _Skipped
        return section(name)

    name = problems.check(lambda: _check_name(path, text, data))
    rom = problems.check(lambda: _check_rom(folder, path, text, table("rom")))
    script = problems.check(lambda: _check_script(folder, path, text, table("script")))
    actions = problems.check(lambda: _check_actions(path, text, table("actions")))
    observation = problems.check(lambda: _check_observation(path, text, table("observation")))
    start = problems.check(lambda: _check_start(folder, path, text, table("start")))
    max_steps = problems.check(lambda: _check_episode(path, text, table("episode")))
    problems.raise_them()
    assert name and rom and script and actions and observation and start
    (combos, frames), (screen, ram), (sequence, savestate, noop_max) = actions, observation, start
    return Game(
        name=name,
        folder=folder,
        description=str(data.get("description", "")),
        rom=rom,
        script=script,
        combos=combos,
        frames_per_step=frames,
        screen=screen,
        ram=ram,
        start=sequence,
        savestate=savestate,
        noop_max=noop_max,
        max_steps=max_steps,
        revision=revision_of(text, rom, script, savestate),
    )


def revision_of(manifest: str, rom: Path, script: Path, savestate: Path | None) -> str:
    """A digest of what makes a game: the manifest, the Lua files beside the script
    (those it may ``require``), the ROM and the save state."""
    digest = hashlib.sha256(manifest.encode())
    files = [*sorted({script, *script.parent.glob("*.lua")}), rom, savestate]
    for file in filter(None, files):
        digest.update(file.name.encode() + b"\0")
        with contextlib.suppress(OSError):  # gone meanwhile: the next read says so
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()[:16]


class _Skipped(Exception):
    """A table not checked: the problem of its misspelled name says all."""


class _Problems:
    """The problems of one manifest, collected so that a user sees them all at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.found: list[GameError] = []

    def check(self, check: Callable[[], _T]) -> _T | None:
        try:
            return check()
        except GameError as exc:
            self.found.append(exc)
        except _Skipped:
            pass
        except Exception as exc:  # a mistake no check foresaw: one more problem
            self.found.append(
                _fail(self.path, f"{type(exc).__name__}: {exc}", "compare it with docs/games.md")
            )
        return None

    def raise_them(self) -> None:
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            messages = [exc.message for exc in self.found]
            raise GameError(
                f"{self.path} has {len(messages)} problems:\n"
                + "\n".join(f"- {m}" for m in messages),
                details={"file": str(self.path), "line": None, "problems": messages},
            )


def _check_top_level_key(path: Path, text: str, data: dict[str, Any], key: str) -> None:
    if unknown := _unknown_key({key: data[key]}, _KEYS[None]):
        _, fix = unknown
        what = f"table [{key}]" if isinstance(data[key], dict) else f"top-level key {key!r}"
        raise _fail(path, f"unknown {what}", fix, _line_of(text, key))


def _check_name(path: Path, text: str, data: dict[str, Any]) -> str:
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise _fail(
            path,
            "the manifest has no name"
            if name is None
            else f"name = {_toml(name)} is not a plain identifier",
            'set name = "MyGame" (letters, digits, _)',
            _line_of(text, "name"),
        )
    return name


def _check_actions(
    path: Path, text: str, actions: dict[str, Any]
) -> tuple[tuple[Combo, ...] | None, int]:
    combos: tuple[Combo, ...] | None = None
    combos_line = _line_of(text, "combos", "actions")
    if "combos" in actions and "type" in actions:
        raise _fail(
            path,
            "[actions] sets both combos and type",
            'keep combos (a Discrete space) or type = "buttons" (MultiBinary), not both',
            _line_of(text, "type", "actions"),
        )
    if "combos" in actions:
        raw = actions["combos"]
        if not isinstance(raw, list) or not raw:
            raise _fail(
                path,
                "[actions] combos must be a non-empty list",
                "list { name = ..., buttons = [...] } tables",
                combos_line,
            )
        if not all(isinstance(c, dict) for c in raw):
            raise _fail(
                path,
                "every entry of [actions] combos must be a table",
                'write { name = "jump", buttons = ["a"] }',
                combos_line,
            )
        for i, combo in enumerate(raw):
            if unknown := _unknown_key(combo, _COMBO_KEYS):
                key, fix = unknown
                raise _fail(path, f"combo {i} has an unknown key {key!r}", fix, combos_line)
        names = [str(c["name"]) for c in raw if "name" in c]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise _fail(
                path,
                f"[actions] combos name {', '.join(twice)} more than once",
                "give each combo its own name (the agent tells actions apart by index; "
                "a user, by name)",
                combos_line,
            )
        combos = tuple(
            Combo(
                str(c.get("name", i)),
                _buttons(path, c.get("buttons", []), f"combo {i}", combos_line),
            )
            for i, c in enumerate(raw)
        )
    elif "type" in actions and actions["type"] != "buttons":
        raise _fail(
            path,
            f"[actions] type = {_toml(actions['type'])} is no action type",
            'write type = "buttons" (the 8 buttons as MultiBinary) or list combos = [...] '
            "(a Discrete space) instead",
            _line_of(text, "type", "actions"),
        )
    elif "type" not in actions:
        raise _fail(
            path,
            '[actions] needs combos = [...] or type = "buttons"',
            "see docs/games.md",
            _line_of(text, "actions"),
        )
    frames = actions.get("frames_per_step", 1)
    if not _natural(frames, 1, 60):
        raise _fail(
            path,
            f"frames_per_step = {_toml(frames)} is not an integer in 1..60",
            "set it to the frames each action is held",
            _line_of(text, "frames_per_step"),
        )
    return combos, frames


def _check_observation(
    path: Path, text: str, observation: dict[str, Any]
) -> tuple[bool, dict[str, int]]:
    ram = observation.get("ram", {})
    if not isinstance(ram, dict):
        raise _fail(
            path,
            "[observation] ram must map names to addresses 0x000-0x7FF",
            "write ram = { player_x = 0x86 }",
            _line_of(text, "ram"),
        )
    for key, address in ram.items():
        if not key or any(c.isspace() or c == "=" for c in key):
            raise _fail(
                path,
                f"[observation] ram name {key!r} is empty or has a space or =",
                "name each value as info keys are named, e.g. player_x = 0x86",
                _line_of(text, "ram", "observation") or _line_of(text, "ram"),
            )
        if not _natural(address, 0, 0x7FF):
            raise _fail(
                path,
                f"[observation] ram {key} = {_toml(address, hex_ints=True)} is no address "
                "in the NES's 2 KiB of RAM",
                "give an address 0x000-0x7FF, e.g. player_x = 0x86",
                _line_of(text, key, "observation.ram")
                or _line_of(text, "ram", "observation")
                or _line_of(text, "ram"),
            )
    screen = observation.get("screen", True)
    if not isinstance(screen, bool):
        raise _fail(
            path,
            f"[observation] screen = {_toml(screen)} is not true or false",
            "write screen = true or screen = false (no quotes)",
            _line_of(text, "screen"),
        )
    if not screen and not ram:
        raise _fail(
            path,
            "the observation has neither the screen nor RAM values",
            "set screen = true or list ram addresses",
            _line_of(text, "observation"),
        )
    return screen, {str(k): int(v) for k, v in ram.items()}


def _check_start(
    folder: Path, path: Path, text: str, start: dict[str, Any]
) -> tuple[tuple[dict[str, Any], ...], Path | None, int]:
    start_line = _line_of(text, "buttons", "start")
    sequence = start.get("buttons", [])
    if not isinstance(sequence, list):
        raise _fail(
            path,
            "[start] buttons must be a list",
            "see docs/games.md",
            start_line,
        )
    for step in sequence:
        if isinstance(step, dict) and (unknown := _unknown_key(step, _START_STEP_KEYS)):
            key, fix = unknown
            raise _fail(
                path, f"start step {_toml(step)} has an unknown key {key!r}", fix, start_line
            )
        well_formed = (
            isinstance(step, dict)
            and ("wait" in step) != ("press" in step)
            and not ("wait" in step and "frames" in step)
        )
        if well_formed:
            count, least = (step["wait"], 0) if "wait" in step else (step.get("frames", 1), 1)
            well_formed = _natural(count, least, 100_000)
        if not well_formed:
            raise _fail(
                path,
                f"start step {_toml(step)} is neither {{ wait = N }} nor "
                "{ press = [...], frames = N } (N a whole number of frames)",
                "see docs/games.md",
                start_line,
            )
        if "press" in step:
            step["press"] = list(_buttons(path, step["press"], "a start press", start_line))
    start_frames = sum(step.get("wait", step.get("frames", 1)) for step in sequence)
    if start_frames > MAX_START_FRAMES:
        raise _fail(
            path,
            f"[start] buttons play {start_frames} frames, over {MAX_START_FRAMES:,}: "
            "every new instance plays them, within the service's start timeout",
            "shorten the waits, or start from a save state (savestate)",
            start_line,
        )
    savestate = None
    if "savestate" in start:
        if not isinstance(start["savestate"], str):
            raise _fail(
                path,
                f"savestate = {_toml(start['savestate'])} is not a file name",
                'name the state file in quotes: savestate = "start.fc0"',
                _line_of(text, "savestate"),
            )
        savestate = (folder / start["savestate"]).resolve()
        if not savestate.is_file():
            raise _fail(
                path,
                f"the save state {savestate} is missing",
                "save one in FCEUX (slot 0, then copy ~/.fceux/fcs/<rom>.fc0 here) or "
                "remove savestate",
                _line_of(text, "savestate"),
            )
        with savestate.open("rb") as state:
            if state.read(3) != b"FCS":  # FCEUX would load nothing, and say nothing
                raise _fail(
                    path,
                    f"the save state {savestate} is no FCEUX save state",
                    "save one in FCEUX itself (other emulators' states do not load): slot 0, "
                    "then copy ~/.fceux/fcs/<rom>.fc0 here",
                    _line_of(text, "savestate"),
                )
    noop_max = start.get("noop_max", 0)
    if not _natural(noop_max, 0, MAX_NOOPS):
        raise _fail(
            path,
            f"[start] noop_max = {_toml(noop_max)} is not a whole number of frames from 0 "
            f"to {MAX_NOOPS:,} (every reset plays up to that many)",
            "write noop_max = 30, say, or leave it out (0)",
            _line_of(text, "noop_max"),
        )
    return tuple(sequence), savestate, noop_max


def _check_episode(path: Path, text: str, episode: dict[str, Any]) -> int | None:
    max_steps = episode.get("max_steps")
    if max_steps is not None and not _natural(max_steps, 1, 10**9):
        raise _fail(
            path,
            f"[episode] max_steps = {_toml(max_steps)} is not a whole number of steps above 0",
            "write max_steps = 4500, say, or leave it out (no limit)",
            _line_of(text, "max_steps"),
        )
    return max_steps


def _check_rom(folder: Path, path: Path, text: str, rom: dict[str, Any]) -> Path:
    file = rom.get("file")
    if not isinstance(file, str):
        raise _fail(path, "[rom] has no file", 'set file = "game.nes"', _line_of(text, "rom"))
    rom_path = (folder / file).resolve()
    if not rom_path.is_file():
        build = folder / str(rom["build"]) if rom.get("build") else None
        if build is not None and build.is_file():
            fix = f"build it: bash {build} (scripts/setup.sh builds the repository's games)"
        else:
            fix = f"put the ROM at {rom_path}" + (
                f"; get it from: {rom['source']}" if rom.get("source") else ""
            )
            if build is not None:
                fix += f"; or put the build script that [rom] build names at {build}"
        raise _fail(path, f"the ROM {rom_path} is missing", fix, _line_of(text, "file", "rom"))
    with rom_path.open("rb") as file:
        head = file.read(16)
    if not head.startswith(_ROM_MAGICS):
        raise _fail(
            path,
            f"the ROM {rom_path} is not an NES ROM FCEUX can load (its first bytes are "
            f"{head[:4].hex(' ') or 'none: it is empty'})",
            "use an iNES (.nes), UNIF or NSF file, or a zip or gzip of one (FDS disks "
            "need a BIOS that netgym does not give FCEUX)",
            _line_of(text, "file", "rom"),
        )
    expected = rom.get("sha256")
    if expected is not None:
        if not isinstance(expected, str) or not re.fullmatch(r"[0-9A-Fa-f]{64}", expected):
            raise _fail(
                path,
                f"[rom] sha256 = {_toml(expected)} is not a SHA-256 (64 hex digits, in quotes)",
                f"write the ROM's: `sha256sum {rom_path}` prints it, or leave sha256 out",
                _line_of(text, "sha256"),
            )
        actual = hashlib.sha256(rom_path.read_bytes()).hexdigest()
        if actual != expected.lower():
            raise _fail(
                path,
                f"the ROM {rom_path} has SHA-256 {actual}, not {expected}",
                "use the ROM the manifest names (a different dump or version will not "
                "match the RAM addresses)",
                _line_of(text, "sha256"),
            )
    return rom_path


def _check_script(folder: Path, path: Path, text: str, script: dict[str, Any]) -> Path:
    file = script.get("file", "game.lua")
    script_path = (folder / str(file)).resolve()
    if not script_path.is_file():
        raise _fail(
            path,
            f"the Lua script {script_path} is missing",
            'write it (see docs/games.md, "The Lua script")',
            _line_of(text, "script"),
        )
    luac = shutil.which("luac5.1")
    if luac:
        result = subprocess.run([luac, "-p", str(script_path)], capture_output=True, text=True)
        if result.returncode != 0:
            message = result.stderr.strip().removeprefix(f"{luac}: ").removeprefix("luac5.1: ")
            line = re.search(r":(\d+):", message)
            raise _fail(
                script_path,
                f"Lua syntax error: {message}",
                "fix the script",
                int(line.group(1)) if line else None,
            )
    return script_path


def discover(
    games_dir: Path, owners: dict[str, Path] | None = None
) -> tuple[dict[str, Game], dict[str, str]]:
    """Every game folder under ``games_dir``: the good ones by name, and the problems by folder.

    Two folders may not give one name. The folder ``owners`` gives for that
    name keeps it (a copy dropped in never takes over a game in use), even
    while a problem keeps it from being served (a manifest half saved); among
    new folders, the first in alphabetical order takes it. The others are
    problems that name it.
    """
    by_name: dict[str, list[Game]] = {}
    problems: dict[str, str] = {}
    if not games_dir.is_dir():
        problem = f"{games_dir} is not a folder; set NETGYM_EMULATOR_GAMES_DIR or --games-dir"
        return {}, {str(games_dir): problem}
    for folder in sorted(p for p in games_dir.iterdir() if p.is_dir()):
        if not (folder / MANIFEST).is_file():
            if _looks_like_a_game(folder):
                problems[folder.name] = (
                    f'{folder} has no {MANIFEST}; add one (see docs/games.md, "The manifest")'
                )
            continue
        try:
            game = load_game(folder)
        except GameError as exc:
            problems[folder.name] = exc.message
            continue
        except Exception as exc:  # a mistake no check foresaw: listed, never fatal to the rest
            problems[folder.name] = (
                f"{folder / MANIFEST} cannot be read: {type(exc).__name__}: {exc}; "
                "compare it with docs/games.md"
            )
            continue
        by_name.setdefault(game.name, []).append(game)
    games: dict[str, Game] = {}
    for name, candidates in by_name.items():
        owner = (owners or {}).get(name)
        kept = next((g for g in candidates if g.folder == owner), None)
        if kept is None and owner is not None and still_claims(owner, name):
            problem = problems.get(owner.name, "its manifest cannot be read")
            holder, now = owner, f", which cannot be served now: {problem}"
        else:
            kept = kept or candidates[0]
            games[name] = kept
            holder, now = kept.folder, ""
        for other in candidates:
            if other is not kept:
                path = other.folder / MANIFEST
                try:
                    line = _line_of(path.read_text(), "name")
                except (OSError, UnicodeDecodeError):  # changed meanwhile
                    line = None
                problems[other.folder.name] = _fail(
                    path,
                    f"the name {name} is already the game in {holder}{now}",
                    "give this game another name (names are unique among game folders)",
                    line,
                ).message
    return games, problems


def name_owners(games: dict[str, Game], before: dict[str, Path]) -> dict[str, Path]:
    """Which folder holds each name: the one serving it, or one that did and still
    names it, or cannot be read now (for ``discover``)."""
    owners = {name: folder for name, folder in before.items() if still_claims(folder, name)}
    owners.update((name, game.folder) for name, game in games.items())
    return owners


def still_claims(folder: Path, name: str) -> bool:
    """Whether a folder that served ``name`` has its manifest still, naming it or unreadable."""
    return (folder / MANIFEST).is_file() and manifest_name(folder) in (None, name)


def manifest_name(folder: Path) -> str | None:
    """The ``name`` a game folder's manifest gives, when it can be read at all."""
    try:
        name = tomllib.loads((folder / MANIFEST).read_text()).get("name")
    except (OSError, ValueError):
        return None
    return name if isinstance(name, str) else None


def _looks_like_a_game(folder: Path) -> bool:
    """Whether a folder without a manifest holds a ROM, a Lua script or a TOML file."""
    try:
        return any(f.suffix.lower() in _GAME_FILE_SUFFIXES for f in folder.iterdir())
    except OSError:
        return False


def folder_signature(games_dir: Path, games: Iterable[Game]) -> tuple[Any, ...]:
    """What changes when anything ``discover`` reads changes: names, sizes, times.

    Every file in every game folder, and the ROMs, scripts and save states
    the games name, wherever they are. A few ``stat`` calls, where reading
    the folder runs ``luac`` and hashes ROMs.
    """
    paths: list[Path] = []
    with contextlib.suppress(OSError):
        for folder in games_dir.iterdir():
            paths.append(folder)
            with contextlib.suppress(OSError):
                paths.extend(folder.iterdir())
    for game in games:
        paths += [game.rom, game.script] + ([game.savestate] if game.savestate else [])
        with contextlib.suppress(OSError):  # the modules it may require, as its revision counts
            paths.extend(game.script.parent.glob("*.lua"))
    signature: list[tuple[Any, ...]] = []
    for path in sorted(paths):
        try:
            stat = path.stat()
        except OSError:
            signature.append((str(path), None))
        else:
            signature.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(signature)
