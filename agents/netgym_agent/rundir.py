"""The run folder: one per training run, everything the run writes, in fixed places.

::

    runs/cartpole_ppo-20250101-120000/
    ├── config.yaml            the config as used (file + --set overrides)
    ├── checkpoints/step_000012345/   model.zip, vecnormalize.pkl, replay_buffer.pkl, manifest.json
    ├── best/                  the best model by evaluation, same layout
    ├── discarded-best-step_*/ a best/ saved past the checkpoint a resume went on from
    ├── final/                 the model at total_timesteps, same layout
    ├── evaluations.jsonl      one JSON object per evaluation
    ├── monitor/               SB3 Monitor CSVs, one per start or resume
    └── tensorboard/           TensorBoard event files
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netgym_agent.checkpoints import CheckpointStore, read_directory
from netgym_agent.config import TrainConfig, config_to_yaml, load_config
from netgym_agent.errors import CheckpointError, RunDirError, explain

LOCK_NAME = ".lock"  # held by the process that trains the run
_held_locks: dict[Path, int] = {}  # by run folder; the kernel lets go when this process ends


@dataclass(frozen=True)
class RunDir:
    """Paths of one run folder."""

    path: Path

    @property
    def config_file(self) -> Path:
        """The config as used."""
        return self.path / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        """The folder of ``step_*`` checkpoints."""
        return self.path / "checkpoints"

    @property
    def best(self) -> Path:
        """The best model by mean evaluation return."""
        return self.path / "best"

    @property
    def final(self) -> Path:
        """The model at the end of training."""
        return self.path / "final"

    @property
    def evaluations(self) -> Path:
        """One JSON line per evaluation."""
        return self.path / "evaluations.jsonl"

    @property
    def tensorboard(self) -> Path:
        """``tensorboard --logdir`` this."""
        return self.path / "tensorboard"

    def monitor_file(self, step: int) -> Path:
        """The Monitor CSV of the segment of the run that starts at ``step``."""
        return self.path / "monitor" / f"{CheckpointStore.name(step)}.monitor.csv"

    @staticmethod
    def claim_default(config_file: Path | None, root: Path = Path("runs")) -> Path:
        """Make and return ``runs/<config name>-<date>-<time>``, under the current
        directory; ``-2``, ``-3``... when runs of that config start in the same second
        (each process gets its own, however many start at once).

        Raises:
            RunDirError: it cannot be made (``runs/`` is read-only, say).
        """
        stem = config_file.stem if config_file else "run"
        path = root / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        taken = 1
        try:
            root.mkdir(parents=True, exist_ok=True)
            while True:
                free = path.with_name(f"{path.name}-{taken}" if taken > 1 else path.name)
                try:
                    free.mkdir()
                except FileExistsError:
                    taken += 1
                    continue
                return free
        except OSError as exc:  # as for a --run-dir that cannot be written
            raise RunDir(path)._cannot_write(exc) from None

    @staticmethod
    def newest_of(config_file: Path, root: Path = Path("runs")) -> RunDir | None:
        """The run in ``root`` made from a config file of this name that was used last."""
        return next(iter(RunDir.runs_of(config_file, root)), None)

    @staticmethod
    def runs_of(config_file: Path, root: Path = Path("runs")) -> list[RunDir]:
        """The runs in ``root`` made from a config file of this name, last used first.

        Only folders named as ``claim_default`` names them count; the last used
        is the one whose ``config.yaml`` was written last (a resume rewrites it).
        """
        name = re.compile(rf"{re.escape(config_file.stem)}-\d{{8}}-\d{{6}}(-\d+)?")
        runs = [
            RunDir(path)
            for path in root.glob(f"{config_file.stem}-*")
            if name.fullmatch(path.name) and (path / "config.yaml").is_file()
        ]
        return sorted(runs, key=lambda run: run.config_file.stat().st_mtime, reverse=True)

    def lock(self) -> None:
        """Claim the run for this process until it exits.

        Raises:
            RunDirError: another process trains this run now.
        """
        try:
            descriptor = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise self._cannot_write(exc) from exc
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise RunDirError(
                f"{self.path} is being trained by another process now: wait until it stops, "
                "or choose another --run-dir"
            ) from None
        _held_locks[self.path.absolute()] = descriptor

    def holds_lock(self) -> bool:
        """Whether this process has claimed the run (``lock``)."""
        return self.path.absolute() in _held_locks

    def unlock(self) -> None:
        """Let go of the run (``lock``): once its folder is removed, say."""
        descriptor = _held_locks.pop(self.path.absolute(), None)
        if descriptor is not None:
            os.close(descriptor)

    def is_locked(self) -> bool:
        """Whether another process trains this run now."""
        try:
            descriptor = os.open(self.path / LOCK_NAME, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(descriptor)
        return False

    def make_folder(self) -> bool:
        """Make the run's folder; whether this process made it (False: it was there).

        Raises:
            RunDirError: it cannot be made.
        """
        try:
            self.path.mkdir(parents=True)
        except FileExistsError:
            return False
        except OSError as exc:
            raise self._cannot_write(exc) from exc
        return True

    def create(self, config: TrainConfig, header: str) -> None:
        """Start a new run here, locked for this process (``lock``), and save its config.

        Raises:
            RunDirError: the folder already holds a run (or another process is
                starting one there), or cannot be written.
        """
        self._refuse_a_run()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._cannot_write(exc) from exc
        self.lock()
        self._refuse_a_run()  # again: two processes given one new folder both passed it
        try:
            self.save_config(config, header)
        except OSError as exc:
            raise self._cannot_write(exc) from exc

    def _refuse_a_run(self) -> None:
        if self.config_file.exists() or self.checkpoints.exists():
            raise RunDirError(
                f"{self.path} already holds a run: pass --resume to continue it, "
                "or choose another --run-dir"
            )

    def _cannot_write(self, exc: OSError) -> RunDirError:
        return RunDirError(f"cannot write the run folder {self.path}: {explain(exc)}")

    def load_config(self, overrides: list[str]) -> TrainConfig:
        """The run's saved config with ``overrides`` applied.

        Raises:
            RunDirError: the folder holds no run.
        """
        if not self.config_file.is_file():
            raise RunDirError(
                f"{self.path} holds no run (no config.yaml): give a run folder, such as "
                "runs/<config>-<date>-<time>"
            )
        return load_config(self.config_file, overrides)

    def save_config(self, config: TrainConfig, header: str) -> None:
        """Write ``config.yaml`` atomically."""
        _write_atomic(self.config_file, config_to_yaml(config, header))

    def append_evaluation(self, record: dict[str, Any]) -> None:
        """Add one evaluation to ``evaluations.jsonl``, durably."""
        with self.evaluations.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")
            stream.flush()
            os.fsync(stream.fileno())

    def read_evaluations(self) -> list[dict[str, Any]]:
        """Every evaluation recorded so far, oldest first; a torn last line is ignored."""
        if not self.evaluations.exists():
            return []
        records = []
        for line in self.evaluations.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def monitor_mark(self, start: int) -> dict[str, Any]:
        """Where the Monitor CSV of the segment started at ``start`` ends now, for a
        checkpoint's manifest (SB3 flushes each row as it writes it)."""
        path = self.monitor_file(start)
        try:
            return {"monitor_file": path.name, "monitor_bytes": path.stat().st_size}
        except OSError:  # no episode has ended yet
            return {}

    def truncate_monitor(self, step: int, mark: dict[str, Any]) -> None:
        """Drop the episodes logged after the checkpoint at ``step`` (``mark``: its
        ``monitor_mark``): a resume plays those steps again."""
        folder = self.path / "monitor"
        for path in folder.glob("step_*.monitor.csv"):
            match = re.fullmatch(r"step_(\d+)\.monitor\.csv", path.name)
            if match and int(match.group(1)) > step:  # a segment the resume discards
                path.unlink(missing_ok=True)
        name, size = mark.get("monitor_file"), mark.get("monitor_bytes")
        if isinstance(name, str) and isinstance(size, int) and "/" not in name:
            path = folder / name
            if path.exists() and path.stat().st_size > size:
                with path.open("r+b") as stream:
                    stream.truncate(size)

    def set_aside_best_after(self, step: int) -> Path | None:
        """Move ``best/`` aside when it was saved past ``step``, where a resume goes on:
        the run's evaluations no longer hold it, and its return would keep every
        later model out of ``best/``. Returns where it went (None: it stays)."""
        try:
            saved = read_directory(self.best, verify=False).info.get("step")
        except CheckpointError:  # no best/, or no manifest: nothing recorded past step
            return None
        if not isinstance(saved, int) or saved <= step:
            return None
        aside = self.path / f"discarded-best-{CheckpointStore.name(saved)}"
        taken = 1
        while aside.exists():
            taken += 1
            aside = aside.with_name(f"discarded-best-{CheckpointStore.name(saved)}-{taken}")
        os.replace(self.best, aside)
        return aside

    def truncate_evaluations(self, step: int) -> None:
        """Keep only evaluations up to ``step``: a resume replays the steps after it."""
        kept = [r for r in self.read_evaluations() if int(r.get("step", 0)) <= step]
        if self.evaluations.exists():
            _write_atomic(self.evaluations, "".join(json.dumps(r) + "\n" for r in kept))


def _write_atomic(path: Path, text: str) -> None:
    temp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    with temp.open("w", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temp, path)
