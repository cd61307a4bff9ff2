"""Scratch folders of a killed service are removed by the next service to start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from netgym.folders import LOCK_NAME, OwnedFolder, remove_stale

OWNER = """\
import sys, time
from pathlib import Path
from netgym.folders import OwnedFolder
folder = OwnedFolder("test-owned-", Path(sys.argv[1]))
print(folder.path, flush=True)
time.sleep(120)
"""


def start_owner(parent: Path) -> tuple[subprocess.Popen[str], Path]:
    process = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(parent)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, Path(process.stdout.readline().strip())


def test_a_killed_owners_folder_goes_and_a_live_owners_stays(tmp_path: Path) -> None:
    live, live_folder = start_owner(tmp_path)
    killed, killed_folder = start_owner(tmp_path)
    try:
        (killed_folder / "screen").write_bytes(b"x" * 1000)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        mine = OwnedFolder("test-owned-", tmp_path)
        assert not killed_folder.exists()
        assert live_folder.is_dir() and (live_folder / LOCK_NAME).is_file()
        mine.remove()
        assert not mine.path.exists()
    finally:
        live.kill()
        killed.kill()
        live.wait()


def test_a_folder_without_a_lock_stays_however_old(tmp_path: Path) -> None:
    """Not ours to judge: a folder someone named so, or an older netgym's."""
    old = tmp_path / "test-owned-old"
    old.mkdir()
    long_ago = time.time() - 86_400
    os.utime(old, (long_ago, long_ago))
    assert remove_stale("test-owned-", tmp_path) == []
    assert old.is_dir()
