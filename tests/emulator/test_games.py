"""Game folders: every problem names the file, the line and the fix."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from netgym_emulator.games import discover, folder_signature, name_owners
from netgym_emulator.manifest import load_game
from netgym_emulator.pool import PROBLEMS_REREAD_S, InstancePool, UnknownGameError
from netgym_emulator.problems import GameError
from netgym_emulator.settings import EmulatorSettings

EFP_ROM = Path("/usr/share/nes/efp.nes")
MANIFEST = """\
name = "Tiny"
[rom]
file = "{rom}"
{extra_rom}
[script]
file = "game.lua"
[actions]
combos = [ {{ name = "noop", buttons = [] }}, {{ name = "fire", buttons = ["a"] }} ]
frames_per_step = 2
[observation]
screen = true
ram = {{ x = 0x10 }}
[start]
buttons = [ {{ wait = 5 }}, {{ press = ["start"], frames = 1 }} ]
noop_max = 3
"""
SCRIPT = "local game = {}\nfunction game.step() return 0, false, {} end\nreturn game\n"


def make_game(
    tmp_path: Path, manifest: str | None = None, script: str = SCRIPT, extra_rom: str = ""
) -> Path:
    folder = tmp_path / "tiny"
    folder.mkdir(exist_ok=True)
    (folder / "game.toml").write_text(manifest or MANIFEST.format(rom=EFP_ROM, extra_rom=extra_rom))
    (folder / "game.lua").write_text(script)
    return folder


def test_good_game(tmp_path: Path) -> None:
    game = load_game(make_game(tmp_path))
    assert game.env_id == "netgym/Tiny-v0"
    assert [c.mask for c in game.combos or []] == [0, 1]
    assert game.start_sequence == "w5,p8:1"
    assert game.spec()["ram"] == ["x"]


def test_button_names_in_a_start_press_are_read_as_in_a_combo(tmp_path: Path) -> None:
    manifest = MANIFEST.format(rom=EFP_ROM, extra_rom="").replace(
        'press = ["start"]', 'press = ["Start"]'
    )
    assert load_game(make_game(tmp_path, manifest)).start_sequence == "w5,p8:1"


def test_a_save_state_that_is_not_fceuxs_is_refused(tmp_path: Path) -> None:
    manifest = MANIFEST.format(rom=EFP_ROM, extra_rom="").replace(
        "[start]", '[start]\nsavestate = "start.fc0"'
    )
    folder = make_game(tmp_path, manifest)
    (folder / "start.fc0").write_bytes(b"MST\x1a not an FCEUX state")
    with pytest.raises(GameError, match=r"game.toml:\d+: the save state .* is no FCEUX save state"):
        load_game(folder)
    (folder / "start.fc0").write_bytes(b"FCSX" + bytes(100))
    assert load_game(folder).savestate == (folder / "start.fc0").resolve()
    (folder / "game.toml").write_text(manifest.replace('"start.fc0"', "5"))
    with pytest.raises(GameError, match=r"game.toml:\d+: savestate = 5 is not a file name"):
        load_game(folder)


def test_an_fds_disk_is_refused_saying_why(tmp_path: Path) -> None:
    disk = tmp_path / "game.fds"
    disk.write_bytes(b"FDS\x1a" + bytes(100))
    with pytest.raises(GameError, match="FDS disks need a BIOS"):
        load_game(make_game(tmp_path, MANIFEST.format(rom=disk, extra_rom="")))


def test_missing_rom_says_where_to_get_it(tmp_path: Path) -> None:
    manifest = MANIFEST.format(rom="nope.nes", extra_rom='source = "the homebrew page"')
    with pytest.raises(
        GameError,
        match=r"game.toml:3: the ROM .*nope.nes is missing; put the ROM"
        r" at .*; get it from: the homebrew page",
    ):
        load_game(make_game(tmp_path, manifest))


def test_a_folder_named_as_the_rom_or_the_script_is_said_to_be_one(tmp_path: Path) -> None:
    folder = make_game(tmp_path, MANIFEST.format(rom="roms", extra_rom=""))
    (folder / "roms").mkdir()
    with pytest.raises(GameError, match=r"game.toml:3: the ROM .*tiny/roms is a folder; name"):
        load_game(folder)
    (folder / "game.toml").write_text(MANIFEST.format(rom=EFP_ROM, extra_rom=""))
    (folder / "game.lua").unlink()
    (folder / "game.lua").mkdir()
    with pytest.raises(GameError, match=r"the Lua script .*tiny/game.lua is a folder; name"):
        load_game(folder)


def test_a_missing_rom_outside_the_games_folder_says_a_container_sees_only_that_folder(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "elsewhere" / "game.nes"
    games = tmp_path / "games"
    games.mkdir()
    with pytest.raises(
        GameError,
        match=r"is missing; put the ROM at .*elsewhere/game.nes \(it is outside the "
        r"games folder .*games: an emulator service in a container, as in Docker Compose, "
        r"sees no other folder of the host; copy the ROM into the game folder and name it",
    ):
        load_game(make_game(games, MANIFEST.format(rom=outside, extra_rom="")))
    folder = make_game(games, MANIFEST.format(rom="linked.nes", extra_rom=""))
    (folder / "linked.nes").symlink_to(outside)
    with pytest.raises(
        GameError,
        match=r"the ROM .*tiny/linked.nes is a link to .*elsewhere/game.nes, which is "
        r"missing; .*outside the games folder",
    ):
        load_game(folder)


def test_a_file_that_is_no_nes_rom_is_refused_before_fceux_sees_it(tmp_path: Path) -> None:
    junk = tmp_path / "junk.nes"
    junk.write_bytes(b"<html>not found</html>")
    manifest = MANIFEST.format(rom=junk, extra_rom="")
    with pytest.raises(
        GameError, match=r"game.toml:3: the ROM .*junk.nes is not an NES ROM FCEUX can load"
    ):
        load_game(make_game(tmp_path, manifest))


def test_wrong_hash(tmp_path: Path) -> None:
    with pytest.raises(GameError, match=rf"game.toml:4: .* has SHA-256 [0-9a-f]+, not {'ab' * 32}"):
        load_game(make_game(tmp_path, extra_rom=f'sha256 = "{"ab" * 32}"'))


def test_a_missing_rom_says_how_to_build_it_when_its_build_script_is_there(
    tmp_path: Path,
) -> None:
    manifest = MANIFEST.format(rom="game.nes", extra_rom='build = "build.sh"\nsource = "cc65"')
    folder = make_game(tmp_path, manifest)
    with pytest.raises(
        GameError,
        match=r"game.nes is missing; put the ROM at .*; get it from: cc65; or put the build "
        r"script that \[rom\] build names at .*tiny/build.sh",
    ):
        load_game(folder)
    (folder / "build.sh").write_text("true\n")
    with pytest.raises(GameError, match=r"game.nes is missing; build it: bash .*tiny/build.sh"):
        load_game(folder)
    # Only a build.sh is run by set-up and by the emulator's container as it starts.
    manifest = manifest.replace('build = "build.sh"', 'build = "make_rom.sh"')
    (folder / "game.toml").write_text(manifest)
    (folder / "make_rom.sh").write_text("true\n")
    with pytest.raises(GameError, match=r"build it: bash .*tiny/make_rom.sh$") as caught:
        load_game(folder)
    assert "docker compose" not in caught.value.message


@pytest.mark.parametrize("written", ['"abc"', "123", '"d9c7566af670e6fc"'])
def test_a_hash_that_is_no_sha256_says_how_to_get_one(tmp_path: Path, written: str) -> None:
    with pytest.raises(
        GameError, match=r"game.toml:4: \[rom\] sha256 = .* is not a SHA-256 .*`sha256sum /"
    ):
        load_game(make_game(tmp_path, extra_rom=f"sha256 = {written}"))


@pytest.mark.skipif(shutil.which("luac5.1") is None, reason="luac5.1 (Debian lua5.1) not installed")
def test_lua_syntax_error_names_the_line(tmp_path: Path) -> None:
    broken = "local game = {}\nfunction game.step()\n  return 0 false\nend\nreturn game\n"
    with pytest.raises(GameError, match=r"game.lua:3: Lua syntax error: [^/]*; fix the script"):
        load_game(make_game(tmp_path, script=broken))


@pytest.mark.skipif(shutil.which("luac5.1") is None, reason="luac5.1 (Debian lua5.1) not installed")
def test_a_syntax_error_in_a_module_beside_the_script_names_its_file_and_line(
    tmp_path: Path,
) -> None:
    folder = make_game(tmp_path)
    (folder / "helper.lua").write_text("local helper = {}\nfunction helper.x(\nreturn helper\n")
    with pytest.raises(GameError, match=r"helper\.lua:3: Lua syntax error: [^/]*; fix the script"):
        load_game(folder)


@pytest.mark.skipif(shutil.which("luac5.1") is None, reason="luac5.1 (Debian lua5.1) not installed")
def test_a_lua_file_that_is_not_utf8_or_starts_with_a_bom_names_its_file_and_line(
    tmp_path: Path,
) -> None:
    folder = make_game(tmp_path)
    (folder / "helper.lua").write_bytes(b"local helper = {}\nhelper.name = \xe9t\xe9\n")
    with pytest.raises(GameError, match=r"helper\.lua:2: Lua syntax error: .*near '\\xe9'"):
        load_game(folder)
    (folder / "helper.lua").unlink()
    (folder / "game.lua").write_bytes(b"\xef\xbb\xbf" + SCRIPT.encode())
    with pytest.raises(GameError, match=r"game\.lua:1: the file starts with a byte-order mark"):
        load_game(folder)


def test_a_manifest_that_starts_with_a_bom_says_so(tmp_path: Path) -> None:
    folder = make_game(tmp_path)
    (folder / "game.toml").write_bytes(b"\xef\xbb\xbf" + (folder / "game.toml").read_bytes())
    with pytest.raises(GameError, match=r"game\.toml:1: the manifest starts with a byte-order"):
        load_game(folder)


def test_blank_optional_texts_are_as_if_left_out(tmp_path: Path) -> None:
    manifest = MANIFEST.format(rom=EFP_ROM, extra_rom='source = ""\nbuild = ""').replace(
        'name = "Tiny"', 'name = "Tiny"\ndescription = ""'
    )
    assert load_game(make_game(tmp_path, manifest)).description == ""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("frames_per_step = 2", "frames_per_step = 0"),
            r"game.toml:9: \[actions\] frames_per_step = 0",
        ),
        (('buttons = ["a"]', 'buttons = ["turbo"]'), r"unknown buttons \['turbo'\]"),
        (
            ('name = "Tiny"', 'name = "my game"'),
            r'game.toml:1: name = "my game" is not a plain identifier',
        ),
        (("[observation]", "[observation"), r"game.toml:10: not valid TOML"),
        (
            ("ram = { x = 0x10 }", "ram = { x = 0x900 }"),
            r"game.toml:12: \[observation\] ram x = 0x900 is no address.*0x000-0x7FF",
        ),
        (
            ("ram = { x = 0x10 }", 'ram = { x = "0x10" }'),
            r"game.toml:12: .*; write the address as a number, without quotes: x = 0x10",
        ),
        (
            ("ram = { x = 0x10 }", "ram = { x = -1 }"),
            r"game.toml:12: \[observation\] ram x = -1 is no address",
        ),
        (
            ("ram = { x = 0x10 }", 'ram = { "x y" = 0x10 }'),
            r"game.toml:12: \[observation\] ram name 'x y' is empty or has a space or =",
        ),
        (
            ('{ name = "noop", buttons = [] }', '"noop"'),
            r"game.toml:8: every entry of \[actions\] combos must be a table",
        ),
        (("screen = true", 'screen = "false"'), r'game.toml:11: \[observation\] screen = "false"'),
        (
            ("noop_max = 3", 'noop_max = "3"'),
            r'game.toml:15: \[start\] noop_max = "3" is not a whole number of frames from 0 to',
        ),
        (
            ("noop_max = 3", "noop_max = 100000"),
            r"game.toml:15: \[start\] noop_max = 100000 is not .* from 0 to 1,000 \(every reset",
        ),
        (
            ("{ wait = 5 }", "{ wait = 15000 }, { wait = 15000 }"),
            r"game.toml:14: \[start\] buttons play 30001 frames, over 20,000: .*save state",
        ),
        (("noop_max = 3", "noop_max = 3\n[episode]\nmax_steps = 0"), r"max_steps = 0 is not"),
        (("{ wait = 5 }", "{ wait = -5 }"), r"game.toml:14: start step \{ wait = -5 \}"),
        (("frames = 1", "frames = 1.5"), r"start step .* \(N a whole number of frames\)"),
        (
            ("frames_per_step = 2", "frames_per_step = true"),
            r"game.toml:9: \[actions\] frames_per_step = true",
        ),
        (
            ("noop_max = 3", "noop_max = 3\n[episode]\nmax_step = 10"),
            r"game.toml:17: unknown key 'max_step' in \[episode\]; did you mean max_steps\?",
        ),
        (
            ("[observation]", "[observaton]"),
            r"game.toml:10: unknown table \[observaton\]; did you mean observation\?",
        ),
        (
            ('name = "Tiny"', 'name = "Tiny"\nnmae = "x"'),
            r"game.toml:2: unknown top-level key 'nmae'",
        ),
        (
            ('buttons = ["a"]', 'button = ["a"]'),
            r'game.toml:8: combo 1 \("fire"\) has an unknown key .button.; did you mean buttons\?',
        ),
        (
            ("frames = 1", "frame = 1"),
            r"game.toml:14: start step .* has an unknown key 'frame'; did you mean frames\?",
        ),
        (
            ("{ wait = 5 }", "{ wait = 5, frames = 2 }"),
            r"game.toml:14: start step \{ wait = 5, frames = 2 \} is neither",
        ),
        (("frames_per_step = 2", 'type = "buttons"'), r"game.toml:9: \[actions\] sets both"),
        (
            ('buttons = ["a"]', 'buttons = ["jump"]'),
            r'game.toml:8: combo 1 \("fire"\) names unknown buttons',
        ),
        (('name = "Tiny"\n', ""), r"game.toml: the manifest has no name; set name = "),
        (
            (
                'combos = [ { name = "noop", buttons = [] }, { name = "fire", buttons = ["a"] } ]',
                'type = "button"',
            ),
            r'game.toml:8: \[actions\] type = "button" is no action type; write type = "buttons"',
        ),
        (
            ('name = "fire"', 'name = "noop"'),
            r"game.toml:8: \[actions\] combos name noop more than once; give each combo its own",
        ),
        (  # an unnamed combo is called by its index
            (
                '{ name = "noop", buttons = [] }',
                '{ buttons = [] }, { name = "0", buttons = ["b"] }',
            ),
            r"game.toml:8: \[actions\] combos name 0 more than once",
        ),
        (  # it would be another button's bit
            ('buttons = ["a"]', 'buttons = ["a", "A"]'),
            r"game.toml:8: combo 1 \(\"fire\"\) names buttons \['a'\] more than once \(a name in "
            r"any case is one button\); list each button once",
        ),
        (
            ('press = ["start"]', 'press = ["start", "start"]'),
            r"names buttons \['start'\] more than once",
        ),
        (
            ('name = "Tiny"', 'name = "Tiny"\ndescription = 5'),
            r'game.toml:2: description = 5 is not a text; write it in quotes: description = "',
        ),
        (
            ('file = "game.lua"', "file = 5"),
            r"game.toml:6: \[script\] file = 5 is not a text",
        ),
        (
            ("[script]", "source = 3\n[script]"),
            r"game.toml:5: \[rom\] source = 3 is not a text",
        ),
        (
            ('name = "fire"', 'name = ""'),
            r'game.toml:8: combo 1 has name = "", which is no name; write name = "jump", or leave',
        ),
    ],
    ids=[
        "frames",
        "button",
        "name",
        "toml-syntax",
        "ram-address",
        "ram-address-quoted",
        "ram-address-negative",
        "ram-name-space",
        "combo-not-table",
        "screen-string",
        "noop-max-string",
        "noop-max-huge",
        "start-too-long",
        "max-steps-zero",
        "wait-negative",
        "press-frames-float",
        "frames-bool",
        "episode-key-typo",
        "table-typo",
        "top-level-typo",
        "combo-key-typo",
        "start-key-typo",
        "wait-with-frames",
        "combos-and-type",
        "combo-button-line",
        "no-name",
        "type-typo",
        "combo-name-twice",
        "combo-index-named",
        "button-twice",
        "press-button-twice",
        "description-number",
        "script-file-number",
        "rom-source-number",
        "combo-name-empty",
    ],
)
def test_bad_manifest(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    manifest = MANIFEST.format(rom=EFP_ROM, extra_rom="").replace(*change)
    with pytest.raises(GameError, match=message):
        load_game(make_game(tmp_path, manifest))


def test_every_problem_of_a_manifest_is_said_at_once(tmp_path: Path) -> None:
    manifest = (
        MANIFEST.format(rom=tmp_path / "missing.nes", extra_rom="")
        .replace("frames_per_step = 2", "frames_per_step = 0")
        .replace("noop_max = 3", "noop_max = -1")
    )
    with pytest.raises(GameError) as raised:
        load_game(make_game(tmp_path, manifest))
    lines = raised.value.message.splitlines()
    assert lines[0] == f"{tmp_path / 'tiny' / 'game.toml'} has 3 problems:"
    assert lines[1].startswith("- ") and "game.toml:3: the ROM" in lines[1]
    assert "game.toml:9: [actions] frames_per_step = 0 is not an integer in 1..60" in lines[2]
    assert "game.toml:15: [start] noop_max = -1 is not a whole number" in lines[3]
    assert len(raised.value.details["problems"]) == 3


def test_a_misspelled_table_is_one_problem_each_not_two(tmp_path: Path) -> None:
    manifest = (
        MANIFEST.format(rom=EFP_ROM, extra_rom="")
        .replace("[actions]", "[action]")
        .replace("[observation]", "[observaton]")
    )
    with pytest.raises(GameError) as raised:
        load_game(make_game(tmp_path, manifest))
    problems = raised.value.details["problems"]
    assert len(problems) == 2, problems
    assert "unknown table [action]; did you mean actions?" in problems[0]
    assert "unknown table [observaton]; did you mean observation?" in problems[1]


def test_discover_keeps_going_past_broken_folders(tmp_path: Path) -> None:
    make_game(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "game.toml").write_text("name = 'Broken'\n[rom]\nfile = 'missing.nes'\n")
    games, problems = discover(tmp_path)
    assert list(games) == ["Tiny"]
    assert "missing.nes is missing" in problems["broken"]


def test_discover_lists_a_folder_with_a_game_but_no_manifest(tmp_path: Path) -> None:
    make_game(tmp_path)
    unnamed = tmp_path / "unnamed"
    unnamed.mkdir()
    (unnamed / "game.lua").write_text(SCRIPT)
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    (zipped / "Some Game (U).zip").write_bytes(b"PK\x03\x04")  # a zipped ROM, alone
    (tmp_path / "notes").mkdir()  # nothing of a game in it: not listed
    games, problems = discover(tmp_path)
    assert list(games) == ["Tiny"]
    assert sorted(problems) == ["unnamed", "zipped"]
    assert "has no game.toml; add one" in problems["unnamed"]


def test_two_folders_of_one_name_serve_one_and_name_it_in_the_others_problem(
    tmp_path: Path,
) -> None:
    original = make_game(tmp_path)
    copy = tmp_path / "a-copy"  # sorts first
    shutil.copytree(original, copy)
    games, problems = discover(tmp_path)
    assert games["Tiny"].folder == copy
    assert list(problems) == ["tiny"]
    assert (
        f"{original / 'game.toml'}:1: the name Tiny is already the game in {copy}"
        in (problems["tiny"])
    )
    # The folder that served the name keeps it: a copy dropped in never takes over.
    games, problems = discover(tmp_path, {"Tiny": original})
    assert games["Tiny"].folder == original
    assert "a-copy/game.toml:1: the name Tiny is already the game in" in problems["a-copy"]
    # Even while a problem keeps it from being served (a manifest saved half way).
    manifest = original / "game.toml"
    text = manifest.read_text()
    for broken in [text.replace("[", "[[", 1), text.replace("name", "nme", 1)]:
        manifest.write_text(broken)
        games, problems = discover(tmp_path, name_owners({}, {"Tiny": original}))
        assert "Tiny" not in games
        assert (
            f"the name Tiny is already the game in {original}, which cannot be served now: "
            in (problems["a-copy"])
        )
    # Renamed, or gone, it lets the name go.
    manifest.write_text(text.replace("Tiny", "Small"))
    assert name_owners({}, {"Tiny": original}) == {}
    games, problems = discover(tmp_path, name_owners({}, {"Tiny": original}))
    assert games["Tiny"].folder == copy and games["Small"].folder == original


def test_discover_lists_a_manifest_no_check_foresaw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_game(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "game.toml").write_text("name = 'Other'\n")

    def load(folder: Path) -> Any:
        if folder.name == "other":
            raise KeyError("surprise")
        return real_load(folder)

    real_load = load_game
    monkeypatch.setattr("netgym_emulator.games.load_game", load)
    games, problems = discover(tmp_path)
    assert list(games) == ["Tiny"]
    assert "cannot be read: KeyError: 'surprise'" in problems["other"]


def test_the_pool_reads_a_folder_again_only_while_its_files_just_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    games_dir = tmp_path / "games"
    games_dir.mkdir()
    folder = make_game(games_dir)
    reads: list[Path] = []

    def counted(games_dir: Path, *args: Any) -> Any:
        reads.append(games_dir)
        return discover(games_dir, *args)

    monkeypatch.setattr("netgym_emulator.pool.discover", counted)
    monkeypatch.setattr("netgym_emulator.pool.RECENT_CHANGE_NS", 60 * 10**9)  # a slow machine
    pool = InstancePool(EmulatorSettings(games_dir=games_dir), display=lambda: ":0")
    try:
        pool.game("Tiny")
        assert len(reads) == 2  # written just now: it may change again unseen, in one tick
        files = [games_dir, folder, *folder.iterdir()]
        long_ago = time.time_ns() - 120 * 10**9
        for path in files:
            os.utime(path, ns=(long_ago, long_ago))
        pool.game("Tiny")
        pool.game("Tiny")
        pool.game("Tiny")
        assert len(reads) == 3  # settled: read once more, then not again
        # A time ahead of the clock (a bad date, a skewed mount) is not a change under way.
        ahead = time.time_ns() + 3600 * 10**9
        os.utime(folder / "game.toml", ns=(ahead, ahead))
        pool.game("Tiny")
        pool.game("Tiny")
        assert len(reads) == 4
    finally:
        pool.stop_all()


def test_the_pool_serves_a_games_folder_as_it_is_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A game dropped in is served, and an edit applies, without a restart."""
    monkeypatch.setattr("netgym_emulator.pool.RECENT_CHANGE_NS", 60 * 10**9)  # a slow machine
    games_dir = tmp_path / "games"
    games_dir.mkdir()
    pool = InstancePool(EmulatorSettings(games_dir=games_dir), display=lambda: ":0")
    try:
        with pytest.raises(UnknownGameError, match="no game 'Tiny'"):
            pool.game("Tiny")
        folder = make_game(games_dir)
        assert pool.game("Tiny").frames_per_step == 2
        manifest = folder / "game.toml"
        read = manifest.stat().st_mtime_ns
        manifest.write_text(
            manifest.read_text().replace("frames_per_step = 2", "frames_per_step = 4")
        )
        os.utime(manifest, ns=(read, read))  # an edit in the same clock tick, of the same size
        assert pool.game("Tiny").frames_per_step == 4
        manifest.write_text(manifest.read_text().replace("screen = true", "screen = 1"))
        with pytest.raises(UnknownGameError, match="screen = 1 is not true or false"):
            pool.game("Tiny")
    finally:
        pool.stop_all()


def test_problems_name_every_file_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `--games-dir games` gives it: the user opens the files the report names."""
    (tmp_path / "games").mkdir()
    folder = make_game(tmp_path / "games")
    manifest = folder / "game.toml"
    manifest.write_text(manifest.read_text().replace("frames_per_step = 2", "frames_per_step = 0"))
    monkeypatch.chdir(tmp_path)
    pool = InstancePool(EmulatorSettings(games_dir=Path("games")), display=lambda: ":0")
    try:
        [problem] = pool.problems.values()
        assert problem.startswith(f"{manifest}:"), problem
    finally:
        pool.stop_all()


def test_a_game_fixed_outside_its_folder_is_served_without_a_restart(tmp_path: Path) -> None:
    """Its ROM installed where the manifest says (as apt-get puts efp.nes)."""
    games_dir = tmp_path / "games"
    folder = games_dir / "some-folder"  # named unlike its game
    folder.mkdir(parents=True)
    rom = tmp_path / "installed-later" / "game.nes"
    (folder / "game.toml").write_text(MANIFEST.format(rom=rom, extra_rom=""))
    (folder / "game.lua").write_text(SCRIPT)
    pool = InstancePool(EmulatorSettings(games_dir=games_dir), display=lambda: ":0")
    try:
        with pytest.raises(UnknownGameError, match=r"cannot be served: .*game\.nes is missing"):
            pool.game("Tiny")
        rom.parent.mkdir()
        shutil.copyfile(EFP_ROM, rom)
        time.sleep(PROBLEMS_REREAD_S)  # folders with problems are read again this often
        assert pool.game("Tiny").rom == rom
        assert not pool.problems
    finally:
        pool.stop_all()


def test_the_log_tells_each_change_of_a_game_folder_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """So that `docker compose logs emulator` shows why a dropped-in game is not served."""
    games_dir = tmp_path / "games"
    games_dir.mkdir()
    pool = InstancePool(EmulatorSettings(games_dir=games_dir), display=lambda: ":0")
    try:
        # Empty, it says so, once: else only the health check's "0 games" would.
        pool.rescan()
        assert [r.getMessage() for r in caplog.records] == [
            f"the games folder {games_dir} holds no game folder: drop one in (docs/games.md), "
            "or set NETGYM_EMULATOR_GAMES_DIR (--games-dir) to another folder"
        ]
        caplog.clear()
        caplog.set_level("INFO", logger="netgym.emulator")
        folder = make_game(games_dir)
        manifest = folder / "game.toml"
        manifest.write_text(manifest.read_text().replace("noop_max = 3", "noop_mx = 3"))
        for _ in range(3):
            pool.rescan()
        told = [r.getMessage() for r in caplog.records]
        assert len(told) == 1 and told[0].startswith("game folder tiny is not served: ")
        assert "unknown key 'noop_mx' in [start]; did you mean noop_max?" in told[0]
        manifest.write_text(manifest.read_text().replace("noop_mx = 3", "noop_max = 3"))
        pool.rescan()
        pool.rescan()
        assert caplog.records[-1].getMessage() == "game folder tiny is served as netgym/Tiny-v0"
        assert len(caplog.records) == 2
    finally:
        pool.stop_all()


def test_an_edit_of_a_module_beside_a_script_in_a_subfolder_is_seen(tmp_path: Path) -> None:
    folder = make_game(tmp_path)
    (folder / "lua").mkdir()
    (folder / "game.lua").rename(folder / "lua" / "game.lua")
    (folder / "lua" / "util.lua").write_text("return 1\n")
    manifest = folder / "game.toml"
    manifest.write_text(manifest.read_text().replace('file = "game.lua"', 'file = "lua/game.lua"'))
    game = load_game(folder)
    before = folder_signature(tmp_path, [game])
    (folder / "lua" / "util.lua").write_text("return 2 -- an edit\n")
    assert folder_signature(tmp_path, [game]) != before
    assert load_game(folder).revision != game.revision


@pytest.mark.parametrize(
    ("header", "change", "message"),
    [
        ("[rom]", ("file = ", "flie = "), r"game.toml:3: unknown key 'flie' in \[rom\]"),
        ("[start]", ("noop_max = 3", "noop_max = -1"), r"game.toml:15: \[start\] noop_max = -1"),
        ("[observation]", ("ram = ", "rma = "), r"game.toml:12: unknown key 'rma'"),
        ("[actions]", ("frames_per_step = 2", '"frames_per_step" = 0'), r"game.toml:9: "),
    ],
    ids=["rom", "start", "observation", "quoted-key"],
)
def test_a_table_header_with_a_comment_keeps_the_lines_of_its_problems(
    tmp_path: Path, header: str, change: tuple[str, str], message: str
) -> None:
    manifest = (
        MANIFEST.format(rom=EFP_ROM, extra_rom="")
        .replace(header, f"{header}   # a comment")
        .replace(*change)
    )
    with pytest.raises(GameError, match=message):
        load_game(make_game(tmp_path, manifest))


def test_a_table_of_ram_values_and_an_array_of_combos_give_their_lines(tmp_path: Path) -> None:
    manifest = (
        MANIFEST.format(rom=EFP_ROM, extra_rom="")
        .replace("ram = { x = 0x10 }\n", "")
        .replace(
            'combos = [ { name = "noop", buttons = [] }, { name = "fire", buttons = ["a"] } ]\n',
            "",
        )
        + "[observation.ram]  # where the game keeps them\nx = 0x900\n"
        + '[[actions.combos]]\nname = "noop"\nbuttons = ["turbo"]\n'
    )
    with pytest.raises(GameError) as raised:
        load_game(make_game(tmp_path, manifest))
    problems = "\n".join(raised.value.details["problems"])
    assert "game.toml:15: [observation] ram x = 0x900 is no address" in problems
    assert "game.toml:16: combo 0 (\"noop\") names unknown buttons ['turbo']" in problems


def test_a_manifest_that_is_not_utf8_says_where_and_what_to_do(tmp_path: Path) -> None:
    folder = make_game(tmp_path)
    text = (folder / "game.toml").read_text().replace('name = "Tiny"', 'name = "Tiny"\n# caf\u00e9')
    (folder / "game.toml").write_bytes(text.encode("latin-1"))
    with pytest.raises(
        GameError,
        match=r"game.toml:2: the manifest is not UTF-8 text \(byte 0xe9 is not UTF-8\); "
        r"save it as UTF-8",
    ):
        load_game(folder)


def test_a_rom_cut_short_is_refused_saying_so(tmp_path: Path) -> None:
    rom = tmp_path / "cut.nes"
    rom.write_bytes(EFP_ROM.read_bytes()[:4000])
    with pytest.raises(
        GameError,
        match=r"game.toml:3: the ROM \S+cut.nes is cut short: its iNES header says 16,400 bytes, "
        r"the file has 4,000; copy the whole ROM again",
    ):
        load_game(make_game(tmp_path, MANIFEST.format(rom=rom, extra_rom="")))


def test_a_games_folder_that_is_a_game_folder_or_holds_one_a_level_down_says_so(
    tmp_path: Path,
) -> None:
    folder = make_game(tmp_path)
    _, problems = discover(folder)
    assert problems[str(folder)] == (
        f"{folder} is a game folder, not a folder of game folders; serve its parent folder "
        f"{tmp_path} (--games-dir or NETGYM_EMULATOR_GAMES_DIR)"
    )
    unpacked = tmp_path / "games" / "tiny-1.0"
    unpacked.mkdir(parents=True)
    folder.rename(unpacked / "tiny")
    games, problems = discover(tmp_path / "games")
    assert games == {}
    assert problems == {
        "tiny-1.0": f"{unpacked} has no game.toml, but {unpacked / 'tiny'} has one; a game "
        f"folder is served only right under the games folder: move it to "
        f"{tmp_path / 'games' / 'tiny'}"
    }


@pytest.mark.skipif(shutil.which("luac5.1") is None, reason="luac5.1 (Debian lua5.1) not installed")
def test_a_module_in_a_folder_under_the_script_is_checked_and_counted(tmp_path: Path) -> None:
    folder = make_game(tmp_path)
    (folder / "lib").mkdir()
    (folder / "lib" / "util.lua").write_text("return 1\n")
    game = load_game(folder)
    before = folder_signature(tmp_path, [game])
    (folder / "lib" / "util.lua").write_text("return 2 -- an edit\n")
    assert folder_signature(tmp_path, [game]) != before
    assert load_game(folder).revision != game.revision
    (folder / "lib" / "util.lua").write_text("return = 3\n")
    with pytest.raises(GameError, match=r"lib/util.lua:1: Lua syntax error"):
        load_game(folder)
