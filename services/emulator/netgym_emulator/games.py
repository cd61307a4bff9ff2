"""The games folder: every game folder in it, which name each one holds, and
what changes when any of them changes."""

from __future__ import annotations

import contextlib
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from netgym_emulator.game_files import ROM_SUFFIXES, lua_files
from netgym_emulator.manifest import MANIFEST, Game, load_game
from netgym_emulator.problems import GameError, fail, line_of

# A folder with no manifest that holds one of these is listed as a game missing it.
_GAME_FILE_SUFFIXES = (*ROM_SUFFIXES, ".fds", ".zip", ".gz", ".lua", ".toml")


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
    if (games_dir / MANIFEST).is_file():
        problems[str(games_dir)] = (
            f"{games_dir} is a game folder, not a folder of game folders; serve its parent "
            f"folder {games_dir.parent} (--games-dir or NETGYM_EMULATOR_GAMES_DIR)"
        )
    for folder in sorted(p for p in games_dir.iterdir() if p.is_dir()):
        if not (folder / MANIFEST).is_file():
            if nested := _nested_game(folder):
                problems[folder.name] = (
                    f"{folder} has no {MANIFEST}, but {nested} has one; a game folder is "
                    f"served only right under the games folder: move it to "
                    f"{games_dir / nested.name}"
                )
            elif _looks_like_a_game(folder):
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
                    line = line_of(path.read_text(), "name")
                except (OSError, UnicodeDecodeError):  # changed meanwhile
                    line = None
                problems[other.folder.name] = fail(
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


def _nested_game(folder: Path) -> Path | None:
    """A game folder one level inside ``folder`` (as unpacking an archive leaves one)."""
    try:
        return next((f.parent for f in sorted(folder.glob(f"*/{MANIFEST}")) if f.is_file()), None)
    except OSError:
        return None


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
            paths.extend(lua_files(game.script))
    signature: list[tuple[Any, ...]] = []
    for path in sorted(paths):
        try:
            stat = path.stat()
        except OSError:
            signature.append((str(path), None))
        else:
            signature.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(signature)


def changed_between(signature: tuple[Any, ...], start_ns: int, end_ns: int) -> bool:
    """Whether a file of a ``folder_signature`` was modified after ``start_ns``, up to
    ``end_ns`` (wall-clock nanoseconds)."""
    return any(entry[1] is not None and start_ns < entry[1] <= end_ns for entry in signature)
