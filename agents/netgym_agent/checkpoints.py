"""Checkpoints as directories that appear whole or not at all.

A checkpoint is written under a temporary name (``.tmp-step_000012345-*``) in
the same folder, every file and the directory fsynced, a ``manifest.json``
with each file's size and SHA-256 written last, and only then renamed to
``step_000012345``: a rename within one file system is atomic, so a process
killed at any moment (SIGKILL, power loss after the fsyncs) leaves either the
complete checkpoint or a temporary directory that the next ``--resume``
deletes. Loading checks the manifest, so a checkpoint damaged later (a full
disk, a bad copy) is skipped with a warning instead of crashing the resume.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netgym_agent.errors import CheckpointError

MANIFEST = "manifest.json"
TEMP_PREFIX = ".tmp-"
_STEP_NAME = re.compile(r"step_(\d{9,})")
# What write_directory moves an existing directory to while it replaces it.
REPLACED = "replaced-"
_REPLACED_NAME = re.compile(rf"{re.escape(TEMP_PREFIX + REPLACED)}(.+)-\d+-\d+")


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint directory and its manifest."""

    path: Path
    step: int
    manifest: dict[str, Any]

    @property
    def info(self) -> dict[str, Any]:
        """What the writer recorded besides the files (e.g. an evaluation result)."""
        info = self.manifest.get("info", {})
        return info if isinstance(info, dict) else {}

    def verify(self) -> None:
        """Check every file against the manifest.

        Raises:
            CheckpointError: a file is missing, has another size or another hash.
        """
        files = self.manifest.get("files")
        if not isinstance(files, dict) or not files:
            raise CheckpointError(f"{self.path}: the manifest lists no files")
        for name, expected in files.items():
            path = self.path / name
            if not path.is_file():
                raise CheckpointError(f"{self.path}: {name} is missing")
            size, digest = _size_and_hash(path)
            if size != expected.get("bytes") or digest != expected.get("sha256"):
                what = (
                    f"{size} bytes, expected {expected.get('bytes')}"
                    if size != expected.get("bytes")
                    else "its SHA-256 differs: its bytes changed"
                )
                raise CheckpointError(
                    f"{self.path}: {name} does not match the manifest ({what}): "
                    "the checkpoint is damaged"
                )


def write_directory(
    parent: Path, name: str, write: Callable[[Path], None], info: dict[str, Any]
) -> Path:
    """Create ``parent/name`` atomically from what ``write`` puts into an empty folder.

    Args:
        parent: the folder to create it in.
        name: its final name; an existing directory of that name is replaced.
        write: fills the temporary directory it is given.
        info: recorded in the manifest (JSON), e.g. the step or an evaluation.

    Returns:
        The final path.
    """
    parent.mkdir(parents=True, exist_ok=True)
    temp = parent / _unique(name)
    temp.mkdir()  # readable as the rest of the run folder is (mkdtemp's would be 0700)
    final = parent / name
    old: Path | None = None
    try:
        write(temp)
        files = {}
        for path in sorted(temp.iterdir()):
            _fsync_file(path)
            size, digest = _size_and_hash(path)
            files[path.name] = {"bytes": size, "sha256": digest}
        manifest = {"name": name, "created": time.time(), "info": info, "files": files}
        (temp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _fsync_file(temp / MANIFEST)
        _fsync_file(temp)
        if final.exists():
            old = parent / _unique(f"{REPLACED}{name}")
            os.rename(final, old)
        os.rename(temp, final)
        _fsync_file(parent)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        if old is not None and not final.exists():
            os.rename(old, final)  # the one it was to replace stays
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_directory(path: Path, *, verify: bool = True) -> Checkpoint:
    """The checkpoint at ``path``, its files checked against the manifest.

    Raises:
        CheckpointError: no readable manifest, or (with ``verify``) a damaged file.
    """
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: no readable {MANIFEST} ({exc})") from None
    match = _STEP_NAME.fullmatch(path.name)
    step = int(match.group(1)) if match else int(manifest.get("info", {}).get("step", 0))
    checkpoint = Checkpoint(path, step, manifest)
    if verify:
        checkpoint.verify()
    return checkpoint


class CheckpointStore:
    """The ``step_*`` checkpoints of one run folder: save, find the latest, prune.

    Args:
        root: the ``checkpoints`` folder.
        keep: how many of the newest checkpoints to keep.
    """

    def __init__(self, root: Path, keep: int) -> None:
        self.root = root
        self.keep = keep

    @staticmethod
    def name(step: int) -> str:
        """The directory name of the checkpoint at ``step``: ``step_000012345``."""
        return f"step_{step:09d}"

    def path(self, step: int) -> Path:
        """Where the checkpoint at ``step`` lives (whether or not it exists)."""
        return self.root / self.name(step)

    def save(self, step: int, write: Callable[[Path], None], info: dict[str, Any]) -> Path:
        """Write the checkpoint at ``step`` atomically, then drop all but the newest ``keep``."""
        path = write_directory(self.root, self.name(step), write, {**info, "step": step})
        self.prune()
        return path

    def steps(self) -> list[int]:
        """Steps of the complete (renamed) checkpoints, oldest first."""
        if not self.root.is_dir():
            return []
        found = (_STEP_NAME.fullmatch(p.name) for p in self.root.iterdir() if p.is_dir())
        return sorted(int(m.group(1)) for m in found if m)

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint whose files match its manifest.

        A damaged one is renamed ``damaged-step_*`` (kept to look at): it no
        longer counts as a checkpoint, so none is pruned in its favour, and
        the next save at its step is written anew.
        """
        for step in reversed(self.steps()):
            try:
                return read_directory(self.path(step))
            except CheckpointError as exc:
                aside = self.root / f"damaged-{self.name(step)}-{time.time_ns()}"
                try:
                    os.rename(self.path(step), aside)
                    where = f"moved to {aside}"
                except OSError as rename_error:  # a folder we may only read, say
                    where = f"left in place ({rename_error})"
                print(f"warning: skipping checkpoint: {exc}; {where}", file=sys.stderr)
        return None

    def remove_temporaries(self) -> list[Path]:
        """Delete what killed writers left behind; returns what was deleted."""
        return remove_temporaries(self.root)

    def prune(self) -> None:
        """Delete all but the newest ``keep`` checkpoints.

        Each is renamed to a temporary name before it is deleted, so that a
        process killed half-way through a deletion never leaves a checkpoint
        name on a half-deleted directory.
        """
        for step in self.steps()[: -self.keep]:
            doomed = self.root / _unique(f"old-{self.name(step)}")
            os.rename(self.path(step), doomed)
            shutil.rmtree(doomed, ignore_errors=True)


def remove_temporaries(folder: Path) -> list[Path]:
    """Delete the ``.tmp-*`` entries of ``folder`` (a killed writer's); returns them.

    A directory that a killed ``write_directory`` had moved aside to replace
    it, and whose replacement never took its name, gets its name back.
    """
    if not folder.is_dir():
        return []
    for path in folder.iterdir():
        replaced = _REPLACED_NAME.fullmatch(path.name)
        if replaced and not (folder / replaced.group(1)).exists():
            os.rename(path, folder / replaced.group(1))
    leftovers = sorted(p for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX))
    for path in leftovers:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
    return leftovers


def _unique(label: str) -> str:
    return f"{TEMP_PREFIX}{label}-{os.getpid()}-{time.monotonic_ns()}"


def _size_and_hash(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _fsync_file(path: Path) -> None:
    """Flush a file's or a directory's data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
