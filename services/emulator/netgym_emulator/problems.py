"""How a game folder's problems are told: each names the file, the line where
there is one, and what to do (docs/games.md), so that a user fixes a game
without reading netgym's code."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from netgym.errors import NetgymError

_T = TypeVar("_T")


class GameError(NetgymError):
    """A game folder is broken: the message names the file, the line and the fix."""

    code = "game_error"
    http_status = 422


def fail(path: Path, problem: str, fix: str, line: int | None = None) -> GameError:
    where = f"{path}:{line}" if line else str(path)
    return GameError(f"{where}: {problem}; {fix}", details={"file": str(path), "line": line})


# A table's header, ``[name]`` or ``[[name]]``, with a comment after it or not.
_HEADER = re.compile(r"\s*\[\[?\s*([^\[\]]*?)\s*\]\]?\s*(#.*)?$")


def line_of(text: str, key: str, section: str | None = None) -> int | None:
    """The line that sets ``key`` (or opens ``[key]``), in ``[section]`` if given."""
    in_section = section is None
    setting = re.compile(rf"\s*(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            name = header.group(1).replace('"', "").replace("'", "")
            if name in (key, f"{section}.{key}"):  # [key], or [[actions.combos]] for combos
                return number
            if section is not None:
                in_section = name == section
            continue
        if in_section and setting.match(line):
            return number
    return None


def text_of(
    path: Path, text: str, table: dict[str, Any], key: str, section: str | None = None
) -> str | None:
    """``table[key]``, a string; None when it is not set or blank (``""``).

    Raises:
        GameError: for a value of another type (``file = 5``).
    """
    value = table.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        where = f"[{section}] " if section else ""
        raise fail(
            path,
            f"{where}{key} = {as_toml(value)} is not a text",
            f'write it in quotes: {key} = "..."',
            line_of(text, key, section),
        )
    return value


def as_toml(value: Any, hex_ints: bool = False) -> str:
    """A manifest value written as in TOML (``"a"``, ``true``, ``{ wait = 5 }``), for messages."""
    if hex_ints and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return hex(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {as_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(as_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


class Skipped(Exception):
    """A table not checked: the problem of its misspelled name says all."""


class Problems:
    """The problems of one manifest, collected so that a user sees them all at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.found: list[GameError] = []

    def check(self, check: Callable[[], _T]) -> _T | None:
        try:
            return check()
        except GameError as exc:
            self.found.append(exc)
        except Skipped:
            pass
        except Exception as exc:  # a mistake no check foresaw: one more problem
            self.found.append(
                fail(self.path, f"{type(exc).__name__}: {exc}", "compare it with docs/games.md")
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
