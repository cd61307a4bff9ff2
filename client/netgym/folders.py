"""Scratch folders that a service owns while it runs, and that outlive no crash for long.

A service removes its folders when it stops. When it is killed (SIGKILL, an
OOM kill, a power cut of its container) it cannot, so each folder holds a
lock file that its owner keeps locked (``flock``) while it lives: the kernel
drops the lock when the owner dies, however it dies. Whoever makes a folder
of the same prefix next removes every sibling whose lock it can take.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

LOCK_NAME = "owner.lock"


class OwnedFolder:
    """A new folder ``parent/prefix*``, locked by this process until ``remove``."""

    def __init__(self, prefix: str, parent: Path | None = None) -> None:
        remove_stale(prefix, parent)
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        # Locked before it takes its name, so that no one finds it unlocked.
        unnamed = self.path / f"{LOCK_NAME}.new"
        self._lock_fd: int | None = os.open(unnamed, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        unnamed.rename(self.path / LOCK_NAME)

    def remove(self) -> None:
        """Remove the folder and everything in it."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def named_or_owned(
    named: Path | None, prefix: str, parent: Path | None = None
) -> tuple[Path, OwnedFolder | None]:
    """``named``, else a new ``OwnedFolder`` ``parent/prefix*`` (returned too, to remove).

    Either way the folders of that prefix whose owner is gone are removed: a killed
    service that had none named made them.
    """
    if named is not None:
        remove_stale(prefix, parent)
        return named, None
    folder = OwnedFolder(prefix, parent)
    return folder.path, folder


def remove_stale(prefix: str, parent: Path | None = None) -> list[Path]:
    """Remove the ``parent/prefix*`` folders whose owner is gone; return them."""
    removed = []
    for folder in Path(parent or tempfile.gettempdir()).glob(prefix + "*"):
        if folder.is_dir() and not folder.is_symlink() and _owner_gone(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _owner_gone(folder: Path) -> bool:
    lock = folder / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:  # no lock file (not ours to judge: a folder someone named so) or
        return False  # another user's
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # locked: its owner lives
        return False
    else:
        return True
    finally:
        os.close(fd)
