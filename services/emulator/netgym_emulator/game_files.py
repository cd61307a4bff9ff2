"""The files a manifest names: its ROM (present, loadable, the hash it gives) and
its Lua script (present, valid Lua), and the revision they make together."""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from netgym_emulator.problems import as_toml, fail, line_of, text_of

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


def check_rom(folder: Path, path: Path, text: str, rom: dict[str, Any]) -> Path:
    file_name = text_of(path, text, rom, "file", "rom")
    if file_name is None:
        raise fail(path, "[rom] has no file", 'set file = "game.nes"', line_of(text, "rom"))
    source = text_of(path, text, rom, "source", "rom")
    build_file = text_of(path, text, rom, "build", "rom")
    rom_path = (folder / file_name).resolve()
    if rom_path.is_dir():
        raise fail(
            path,
            f"the ROM {rom_path} is a folder",
            "name the ROM file itself in [rom] file (its path from the game folder)",
            line_of(text, "file", "rom"),
        )
    if not rom_path.is_file():
        build = folder / build_file if build_file else None
        if build is not None and build.is_file():
            fix = f"build it: bash {build}"
            if build.name == "build.sh":  # the name set-up and the container look for
                fix += (
                    " (scripts/setup.sh builds the repository's games; in Docker Compose "
                    "the emulator runs each game's build.sh as it starts: docker compose "
                    "restart emulator)"
                )
        else:
            fix = f"put the ROM at {rom_path}" + (f"; get it from: {source}" if source else "")
            if build is not None:
                fix += f"; or put the build script that [rom] build names at {build}"
        problem = f"the ROM {rom_path} is missing"
        if (folder / file_name).is_symlink():
            problem = f"the ROM {folder / file_name} is a link to {rom_path}, which is missing"
        if not rom_path.is_relative_to(folder.parent.resolve()):
            fix += (
                f" (it is outside the games folder {folder.parent}: an emulator service in "
                "a container, as in Docker Compose, sees no other folder of the host; copy "
                "the ROM into the game folder and name it in [rom] file)"
            )
        raise fail(path, problem, fix, line_of(text, "file", "rom"))
    with rom_path.open("rb") as file:
        head = file.read(16)
    if not head.startswith(_ROM_MAGICS):
        raise fail(
            path,
            f"the ROM {rom_path} is not an NES ROM FCEUX can load (its first bytes are "
            f"{head[:4].hex(' ') or 'none: it is empty'})",
            "use an iNES (.nes), UNIF or NSF file, or a zip or gzip of one (FDS disks "
            "need a BIOS that netgym does not give FCEUX)",
            line_of(text, "file", "rom"),
        )
    if (short := _ines_shortfall(head, rom_path.stat().st_size)) is not None:
        raise fail(
            path,
            f"the ROM {rom_path} is cut short: its iNES header says {short[0]:,} bytes, "
            f"the file has {short[1]:,}",
            "copy the whole ROM again (a download or copy stopped part way)",
            line_of(text, "file", "rom"),
        )
    expected = rom.get("sha256")
    if expected is not None:
        if not isinstance(expected, str) or not re.fullmatch(r"[0-9A-Fa-f]{64}", expected):
            raise fail(
                path,
                f"[rom] sha256 = {as_toml(expected)} is not a SHA-256 (64 hex digits, in quotes)",
                f"write the ROM's: `sha256sum {rom_path}` prints it, or leave sha256 out",
                line_of(text, "sha256"),
            )
        actual = hashlib.sha256(rom_path.read_bytes()).hexdigest()
        if actual != expected.lower():
            raise fail(
                path,
                f"the ROM {rom_path} has SHA-256 {actual}, not {expected}",
                "use the ROM the manifest names (a different dump or version will not "
                "match the RAM addresses)",
                line_of(text, "sha256"),
            )
    return rom_path


def _ines_shortfall(head: bytes, size: int) -> tuple[int, int] | None:
    """(the bytes an iNES ROM's header says it has, the bytes it has) when it has fewer."""
    if not head.startswith(b"NES\x1a") or len(head) < 16:
        return None
    prg_units, chr_units = head[4], head[5]
    if head[7] & 0x0C == 0x08:  # NES 2.0: the high bits of both sizes are in byte 9
        if head[9] & 0x0F == 0x0F or head[9] >> 4 == 0x0F:
            return None  # sizes written as exponents: rare, and FCEUX checks them
        prg_units |= (head[9] & 0x0F) << 8
        chr_units |= (head[9] >> 4) << 8
    trainer = 512 if head[6] & 0x04 else 0
    wanted = 16 + trainer + prg_units * 16_384 + chr_units * 8_192
    return (wanted, size) if size < wanted else None


def check_script(folder: Path, path: Path, text: str, script: dict[str, Any]) -> Path:
    file = text_of(path, text, script, "file", "script") or "game.lua"
    script_path = (folder / file).resolve()
    if script_path.is_dir():
        raise fail(
            path,
            f"the Lua script {script_path} is a folder",
            "name the script file itself in [script] file (game.lua by default)",
            line_of(text, "script"),
        )
    if not script_path.is_file():
        raise fail(
            path,
            f"the Lua script {script_path} is missing",
            'write it (see docs/games.md, "The Lua script")',
            line_of(text, "script"),
        )
    luac = shutil.which("luac5.1")
    if luac:
        # The modules it may require too: a syntax error in one would otherwise show
        # only at the first reset.
        for lua_file in lua_files(script_path):
            _check_syntax(luac, lua_file)
    return script_path


# What some editors (Windows Notepad) write first in a UTF-8 file.
BYTE_ORDER_MARK = b"\xef\xbb\xbf"


def lua_files(script: Path) -> list[Path]:
    """The script and the modules it may ``require``: every Lua file in its folder and
    the folders under it (``require("lib.util")`` loads ``lib/util.lua``)."""
    return sorted({script, *script.parent.rglob("*.lua")})


def _check_syntax(luac: str, lua_file: Path) -> None:
    if lua_file.read_bytes().startswith(BYTE_ORDER_MARK):
        raise fail(
            lua_file,
            "the file starts with a byte-order mark (the bytes EF BB BF), which Lua 5.1 "
            "cannot read",
            "save it as UTF-8 without a BOM (most editors offer that encoding)",
            1,
        )
    # luac quotes the byte it stopped at, which need not be UTF-8 (a Latin-1 letter).
    result = subprocess.run(
        [luac, "-p", str(lua_file)], capture_output=True, text=True, errors="backslashreplace"
    )
    if result.returncode != 0:
        message = result.stderr.strip().removeprefix(f"{luac}: ").removeprefix("luac5.1: ")
        line = re.search(r":(\d+):", message)
        if line and message[: line.start()].endswith(lua_file.name):
            message = message[line.end() :].strip()  # its path (luac may cut it) and line
        raise fail(
            lua_file,
            f"Lua syntax error: {message}",
            "fix the script",
            int(line.group(1)) if line else None,
        )


def revision_of(manifest: str, rom: Path, script: Path, savestate: Path | None) -> str:
    """A digest of what makes a game: the manifest, the script and the modules it may
    ``require`` (``lua_files``), the ROM and the save state."""
    digest = hashlib.sha256(manifest.encode())
    files = [*lua_files(script), rom, savestate]
    for file in filter(None, files):
        digest.update(file.name.encode() + b"\0")
        with contextlib.suppress(OSError):  # gone meanwhile: the next read says so
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()[:16]
