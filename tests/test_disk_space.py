"""scripts/disk-space.sh: set-up warns of a disk too full, and never fails for it."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "disk-space.sh"


def run(folder: Path, megabytes: int) -> subprocess.CompletedProcess[str]:
    command = [str(SCRIPT), str(folder), str(megabytes), "setting up .venv"]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def test_too_little_room_is_a_warning_with_the_figures(tmp_path: Path) -> None:
    result = run(tmp_path, 10**12)  # a million TB: more than any disk has
    assert result.returncode == 0
    assert result.stderr.startswith("warning: only ")
    assert "setting up .venv needs about 1000000000000 MB" in result.stderr


def test_enough_room_says_nothing(tmp_path: Path) -> None:
    result = run(tmp_path, 1)
    assert (result.returncode, result.stderr) == (0, "")


def test_a_folder_that_is_not_there_says_nothing(tmp_path: Path) -> None:
    result = run(tmp_path / "missing", 10**12)
    assert (result.returncode, result.stderr) == (0, "")
