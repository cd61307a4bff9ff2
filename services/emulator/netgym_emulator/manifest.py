"""A game folder's manifest, ``game.toml``: read and checked into a ``Game``.

A game is a folder under ``games/`` with ``game.toml`` (docs/games.md). Every
problem is a ``GameError`` naming the file, the line where there is one, and
what to do.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import zipfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from netgym.emulator.bridge import BUTTONS, buttons_mask
from netgym_emulator.game_files import (
    BYTE_ORDER_MARK,
    ROM_SUFFIXES,
    check_rom,
    check_script,
    revision_of,
)
from netgym_emulator.problems import Problems, Skipped, as_toml, fail, line_of, text_of

MANIFEST = "game.toml"
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


@dataclass(frozen=True)
class Combo:
    """A named button combination: one action of a Discrete action space."""

    name: str
    buttons: tuple[str, ...]

    @property
    def mask(self) -> int:
        return buttons_mask(self.buttons)


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
                mask = buttons_mask(step["press"])
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


def _is_address_text(text: str) -> bool:
    """Whether ``text`` reads as a RAM address (``"0x13"``, ``"19"``): one put in quotes."""
    try:
        return 0 <= int(text, 0) <= 0x7FF
    except ValueError:
        return False


def _combo_label(index: int, combo: dict[str, Any]) -> str:
    """A combo as an error names it: ``combo 1 ("up")``, or ``combo 1`` with no name."""
    name = combo.get("name")
    return f"combo {index} ({as_toml(name)})" if isinstance(name, str) else f"combo {index}"


def _buttons(path: Path, raw: Any, where: str, line: int | None) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(b, str) for b in raw):
        raise fail(path, f"{where} must be a list of button names", f"use {list(BUTTONS)}", line)
    unknown = [b for b in raw if b.lower() not in BUTTONS]
    if unknown:
        raise fail(path, f"{where} names unknown buttons {unknown}", f"use {list(BUTTONS)}", line)
    buttons = [b.lower() for b in raw]
    if twice := sorted({b for b in buttons if buttons.count(b) > 1}, key=BUTTONS.index):
        raise fail(
            path,
            f"{where} names buttons {twice} more than once (a name in any case is one button)",
            "list each button once",
            line,
        )
    return tuple(buttons)


def load_game(folder: Path) -> Game:
    """Read and check one game folder.

    Raises:
        GameError: for a missing or bad manifest, ROM or script; every problem
            found at once, one to a line, where there are several.
    """
    path = folder / MANIFEST
    if not path.is_file():
        raise fail(path, "no manifest", "add game.toml (see docs/games.md)")
    raw_text = path.read_bytes()
    if raw_text.startswith(BYTE_ORDER_MARK):
        raise fail(
            path,
            "the manifest starts with a byte-order mark (the bytes EF BB BF), which TOML "
            "does not allow",
            "save it as UTF-8 without a BOM (most editors offer that encoding)",
            1,
        )
    try:
        text = raw_text.decode()
    except UnicodeDecodeError as exc:
        raise fail(
            path,
            f"the manifest is not UTF-8 text (byte {raw_text[exc.start]:#04x} is not UTF-8)",
            "save it as UTF-8, as TOML requires",
            raw_text.count(b"\n", 0, exc.start) + 1,
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise fail(
            path, f"not valid TOML ({exc})", "fix the syntax", int(line.group(1)) if line else None
        ) from None

    def section(name: str) -> dict[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise fail(path, f"[{name}] must be a table", "see docs/games.md", line_of(text, name))
        if unknown := _unknown_key(value, _KEYS[name]):
            key, fix = unknown
            raise fail(path, f"unknown key {key!r} in [{name}]", fix, line_of(text, key, name))
        return value

    problems = Problems(path)
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
            raise Skipped
        return section(name)

    name = problems.check(lambda: _check_name(path, text, data))
    description = problems.check(lambda: text_of(path, text, data, "description"))
    rom = problems.check(lambda: check_rom(folder, path, text, table("rom")))
    script = problems.check(lambda: check_script(folder, path, text, table("script")))
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
        description=description or "",
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


def _check_top_level_key(path: Path, text: str, data: dict[str, Any], key: str) -> None:
    if unknown := _unknown_key({key: data[key]}, _KEYS[None]):
        _, fix = unknown
        what = f"table [{key}]" if isinstance(data[key], dict) else f"top-level key {key!r}"
        raise fail(path, f"unknown {what}", fix, line_of(text, key))


def _check_name(path: Path, text: str, data: dict[str, Any]) -> str:
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail(
            path,
            "the manifest has no name"
            if name is None
            else f"name = {as_toml(name)} is not a plain identifier",
            'set name = "MyGame" (letters, digits, _)',
            line_of(text, "name"),
        )
    return name


def _check_actions(
    path: Path, text: str, actions: dict[str, Any]
) -> tuple[tuple[Combo, ...] | None, int]:
    combos: tuple[Combo, ...] | None = None
    combos_line = line_of(text, "combos", "actions")
    if "combos" in actions and "type" in actions:
        raise fail(
            path,
            "[actions] sets both combos and type",
            'keep combos (a Discrete space) or type = "buttons" (MultiBinary), not both',
            line_of(text, "type", "actions"),
        )
    if "combos" in actions:
        raw = actions["combos"]
        if not isinstance(raw, list) or not raw:
            raise fail(
                path,
                "[actions] combos must be a non-empty list",
                "list { name = ..., buttons = [...] } tables",
                combos_line,
            )
        if not all(isinstance(c, dict) for c in raw):
            raise fail(
                path,
                "every entry of [actions] combos must be a table",
                'write { name = "jump", buttons = ["a"] }',
                combos_line,
            )
        for i, combo in enumerate(raw):
            if unknown := _unknown_key(combo, _COMBO_KEYS):
                key, fix = unknown
                where = _combo_label(i, combo)
                raise fail(path, f"{where} has an unknown key {key!r}", fix, combos_line)
            name = combo.get("name")
            if name is not None and (not isinstance(name, str) or not name.strip()):
                raise fail(
                    path,
                    f"combo {i} has name = {as_toml(name)}, which is no name",
                    f'write name = "jump", or leave name out (the combo is then called "{i}")',
                    combos_line,
                )
        # A combo left unnamed is called by its index, which another may name too.
        names = [str(c.get("name", i)) for i, c in enumerate(raw)]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise fail(
                path,
                f"[actions] combos name {', '.join(twice)} more than once",
                "give each combo its own name (the agent tells actions apart by index; "
                "a user, by name)",
                combos_line,
            )
        combos = tuple(
            Combo(
                str(c.get("name", i)),
                _buttons(path, c.get("buttons", []), _combo_label(i, c), combos_line),
            )
            for i, c in enumerate(raw)
        )
    elif "type" in actions and actions["type"] != "buttons":
        raise fail(
            path,
            f"[actions] type = {as_toml(actions['type'])} is no action type",
            'write type = "buttons" (the 8 buttons as MultiBinary) or list combos = [...] '
            "(a Discrete space) instead",
            line_of(text, "type", "actions"),
        )
    elif "type" not in actions:
        raise fail(
            path,
            '[actions] needs combos = [...] or type = "buttons"',
            "see docs/games.md",
            line_of(text, "actions"),
        )
    frames = actions.get("frames_per_step", 1)
    if not _natural(frames, 1, 60):
        raise fail(
            path,
            f"[actions] frames_per_step = {as_toml(frames)} is not an integer in 1..60",
            "set it to the frames each action is held",
            line_of(text, "frames_per_step"),
        )
    return combos, frames


def _check_observation(
    path: Path, text: str, observation: dict[str, Any]
) -> tuple[bool, dict[str, int]]:
    ram = observation.get("ram", {})
    if not isinstance(ram, dict):
        raise fail(
            path,
            "[observation] ram must map names to addresses 0x000-0x7FF",
            "write ram = { player_x = 0x86 }",
            line_of(text, "ram"),
        )
    for key, address in ram.items():
        if not key or any(c.isspace() or c == "=" for c in key):
            raise fail(
                path,
                f"[observation] ram name {key!r} is empty or has a space or =",
                "name each value as info keys are named, e.g. player_x = 0x86",
                line_of(text, "ram", "observation") or line_of(text, "ram"),
            )
        if not _natural(address, 0, 0x7FF):
            raise fail(
                path,
                f"[observation] ram {key} = {as_toml(address, hex_ints=True)} is no address "
                "in the NES's 2 KiB of RAM",
                f"write the address as a number, without quotes: {key} = {address}"
                if isinstance(address, str) and _is_address_text(address)
                else "give an address 0x000-0x7FF, e.g. player_x = 0x86",
                line_of(text, key, "observation.ram")
                or line_of(text, "ram", "observation")
                or line_of(text, "ram"),
            )
    screen = observation.get("screen", True)
    if not isinstance(screen, bool):
        raise fail(
            path,
            f"[observation] screen = {as_toml(screen)} is not true or false",
            "write screen = true or screen = false (no quotes)",
            line_of(text, "screen"),
        )
    if not screen and not ram:
        raise fail(
            path,
            "the observation has neither the screen nor RAM values",
            "set screen = true or list ram addresses",
            line_of(text, "observation"),
        )
    return screen, {str(k): int(v) for k, v in ram.items()}


def _check_start(
    folder: Path, path: Path, text: str, start: dict[str, Any]
) -> tuple[tuple[dict[str, Any], ...], Path | None, int]:
    start_line = line_of(text, "buttons", "start")
    sequence = start.get("buttons", [])
    if not isinstance(sequence, list):
        raise fail(
            path,
            "[start] buttons must be a list",
            "see docs/games.md",
            start_line,
        )
    for step in sequence:
        if isinstance(step, dict) and (unknown := _unknown_key(step, _START_STEP_KEYS)):
            key, fix = unknown
            raise fail(
                path, f"start step {as_toml(step)} has an unknown key {key!r}", fix, start_line
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
            raise fail(
                path,
                f"start step {as_toml(step)} is neither {{ wait = N }} nor "
                "{ press = [...], frames = N } (N a whole number of frames)",
                "see docs/games.md",
                start_line,
            )
        if "press" in step:
            step["press"] = list(_buttons(path, step["press"], "a start press", start_line))
    start_frames = sum(step.get("wait", step.get("frames", 1)) for step in sequence)
    if start_frames > MAX_START_FRAMES:
        raise fail(
            path,
            f"[start] buttons play {start_frames} frames, over {MAX_START_FRAMES:,}: "
            "every new instance plays them, within the service's start timeout",
            "shorten the waits, or start from a save state (savestate)",
            start_line,
        )
    savestate = None
    if "savestate" in start:
        if not isinstance(start["savestate"], str):
            raise fail(
                path,
                f"savestate = {as_toml(start['savestate'])} is not a file name",
                'name the state file in quotes: savestate = "start.fc0"',
                line_of(text, "savestate"),
            )
        savestate = (folder / start["savestate"]).resolve()
        if not savestate.is_file():
            raise fail(
                path,
                f"the save state {savestate} is missing",
                "save one in FCEUX (slot 0, then copy ~/.fceux/fcs/<rom>.fc0 here) or "
                "remove savestate",
                line_of(text, "savestate"),
            )
        with savestate.open("rb") as state:
            if state.read(3) != b"FCS":  # FCEUX would load nothing, and say nothing
                raise fail(
                    path,
                    f"the save state {savestate} is no FCEUX save state",
                    "save one in FCEUX itself (other emulators' states do not load): slot 0, "
                    "then copy ~/.fceux/fcs/<rom>.fc0 here",
                    line_of(text, "savestate"),
                )
    noop_max = start.get("noop_max", 0)
    if not _natural(noop_max, 0, MAX_NOOPS):
        raise fail(
            path,
            f"[start] noop_max = {as_toml(noop_max)} is not a whole number of frames from 0 "
            f"to {MAX_NOOPS:,} (every reset plays up to that many)",
            "write noop_max = 30, say, or leave it out (0)",
            line_of(text, "noop_max"),
        )
    return tuple(sequence), savestate, noop_max


def _check_episode(path: Path, text: str, episode: dict[str, Any]) -> int | None:
    max_steps = episode.get("max_steps")
    if max_steps is not None and not _natural(max_steps, 1, 10**9):
        raise fail(
            path,
            f"[episode] max_steps = {as_toml(max_steps)} is not a whole number of steps above 0",
            "write max_steps = 4500, say, or leave it out (no limit)",
            line_of(text, "max_steps"),
        )
    return max_steps
