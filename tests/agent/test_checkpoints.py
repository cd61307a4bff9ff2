"""Checkpoint directories appear whole or not at all, and damaged ones are skipped."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from netgym_agent.checkpoints import (
    MANIFEST,
    CheckpointStore,
    read_directory,
    remove_temporaries,
    write_directory,
)
from netgym_agent.errors import CheckpointError


def writer(text: str) -> Callable[[Path], None]:
    def write(directory: Path) -> None:
        (directory / "model.zip").write_text(text)
        (directory / "extra.pkl").write_bytes(b"\0" * 10)

    return write


def test_saved_checkpoint_has_a_manifest_and_verifies(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep=3)
    path = store.save(1234, writer("weights"), {"episodes": 7})
    assert path == tmp_path / "step_000001234"
    checkpoint = read_directory(path)
    assert checkpoint.step == 1234
    assert checkpoint.info == {"episodes": 7, "step": 1234}
    manifest = json.loads((path / MANIFEST).read_text())
    assert set(manifest["files"]) == {"model.zip", "extra.pkl"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_a_saved_folder_is_as_readable_as_the_umask_allows(tmp_path: Path) -> None:
    # Other users of the host (a shared runs/ folder) read the models as the rest.
    old = os.umask(0o022)
    try:
        path = CheckpointStore(tmp_path, keep=3).save(1, writer("weights"), {})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o755


def test_a_failing_writer_leaves_nothing(tmp_path: Path) -> None:
    def broken(directory: Path) -> None:
        (directory / "model.zip").write_text("half")
        raise OSError("disk full")

    store = CheckpointStore(tmp_path, keep=3)
    with pytest.raises(OSError, match="disk full"):
        store.save(10, broken, {})
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_changed_in_place_is_damaged_by_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = CheckpointStore(tmp_path, keep=5)
    store.save(100, writer("a"), {})
    (store.path(100) / "model.zip").write_text("z")  # the same size
    assert store.latest() is None
    assert "model.zip does not match the manifest (its SHA-256 differs" in capsys.readouterr().err


def test_latest_skips_damaged_checkpoints_and_leftovers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = CheckpointStore(tmp_path, keep=5)
    store.save(100, writer("a"), {})
    store.save(200, writer("b"), {})
    (store.path(200) / "model.zip").write_text("bit rot")
    leftover = tmp_path / ".tmp-step_000000300-abc"
    leftover.mkdir()
    (leftover / "model.zip").write_text("half written")
    latest = store.latest()
    assert latest is not None and latest.step == 100
    assert "does not match the manifest" in capsys.readouterr().err
    assert store.remove_temporaries() == [leftover]
    assert not leftover.exists()
    # The damaged one is set aside, kept to look at, and no longer a checkpoint.
    assert store.steps() == [100]
    assert [p.name.startswith("damaged-step_000000200-") for p in tmp_path.iterdir()].count(True)


def test_store_keeps_the_newest(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep=2)
    for step in (1, 2, 3, 4):
        store.save(step, writer(str(step)), {})
    assert store.steps() == [3, 4]


def test_replacing_a_named_directory(tmp_path: Path) -> None:
    write_directory(tmp_path, "best", writer("old"), {"mean_return": 1.0})
    write_directory(tmp_path, "best", writer("new"), {"mean_return": 2.0})
    best = read_directory(tmp_path / "best")
    assert best.info["mean_return"] == 2.0
    assert (tmp_path / "best" / "model.zip").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_missing_manifest_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "step_000000001").mkdir()
    with pytest.raises(CheckpointError, match=MANIFEST):
        read_directory(tmp_path / "step_000000001")


def test_a_damaged_checkpoint_neither_outlives_good_ones_nor_blocks_its_step(
    tmp_path: Path,
) -> None:
    store = CheckpointStore(tmp_path, keep=1)
    store.save(100, writer("a"), {})
    (tmp_path / "step_000000200").mkdir()  # damaged: no manifest
    latest = store.latest()
    assert latest is not None and latest.step == 100
    store.save(150, writer("b"), {})  # pruning keeps this one, not the damaged 200
    assert store.steps() == [150]
    store.save(200, writer("c"), {})  # written anew at the damaged one's step
    assert (store.path(200) / "model.zip").read_text() == "c"


def test_a_replacement_killed_half_way_keeps_the_old_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_directory(tmp_path, "best", writer("old"), {"mean_return": 1.0})
    real_rename = os.rename
    calls = []

    def rename(source: Path, target: Path) -> None:
        calls.append(target)
        if len(calls) == 2:  # the new directory taking the name
            raise KeyboardInterrupt
        real_rename(source, target)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        write_directory(tmp_path, "best", writer("new"), {"mean_return": 2.0})
    monkeypatch.setattr(os, "rename", real_rename)
    assert (tmp_path / "best" / "model.zip").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_a_replaced_directory_left_by_a_killed_writer_gets_its_name_back(
    tmp_path: Path,
) -> None:
    write_directory(tmp_path, "best", writer("old"), {"mean_return": 1.0})
    os.rename(tmp_path / "best", tmp_path / ".tmp-replaced-best-123-456")  # then SIGKILL
    half = tmp_path / ".tmp-best-xyz"
    half.mkdir()
    assert remove_temporaries(tmp_path) == [half]
    assert read_directory(tmp_path / "best").info["mean_return"] == 1.0
