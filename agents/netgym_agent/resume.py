"""Where a run starts: a new run folder, or the checkpoint that ``--resume`` goes on
from, and what a resume may change of the run's config."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import netgym
from netgym.errors import NetgymError
from netgym_agent.checkpoints import (
    Checkpoint,
    CheckpointStore,
    read_directory,
    remove_temporaries,
)
from netgym_agent.config import TrainConfig, load_config
from netgym_agent.errors import AgentError, CheckpointError, RunDirError
from netgym_agent.rundir import RunDir

if TYPE_CHECKING:
    from netgym_agent.trainer import TrainOptions

# Config sections a resumed run keeps as it was made with: the model's
# hyperparameters and the normalisation statistics come from the checkpoint,
# and its spaces from the env.
FIXED_ON_RESUME = ("env", "algo", "normalize")
# How long --resume-latest asks the envapi whether a run's game changed; the resume
# checks again as it opens the env.
GAME_CHECK_TIMEOUT_S = 15.0


def resolve_latest(options: TrainOptions, out: TextIO) -> TrainOptions:
    """``--resume-latest``: ``--resume`` the run of this config used last, unless it has
    finished, is trained by another process now, or was made with another config.

    When only its game has changed since its checkpoint (an NES game's folder was
    edited), the newest other run of this config saved on the game as it is now
    (put back as it was) is resumed, else a new run starts."""
    if not options.resume_latest:
        return options
    if options.resume or options.run_dir is not None:
        raise RunDirError(
            "--resume-latest finds the run folder itself: leave out --resume and --run-dir"
        )
    if options.config_file is None:
        raise RunDirError("--resume-latest needs a CONFIG file: the runs it made are resumed")
    new = replace(options, resume_latest=False)
    latest = RunDir.newest_of(options.config_file)
    if latest is None:
        return new
    config = load_config(options.config_file, options.overrides)
    why_not = _why_not_resume(latest, config)
    game_changed = served = None
    saved = None if why_not is not None else _saved_revision(latest, config)
    if saved is not None and saved[1] is not None:  # an NES game's: ask the envapi
        served = _served_revision(config, options)
        game_changed = why_not = _game_changed(saved[0], saved[1], served)
    if why_not is None:
        print(
            f"resuming the newest unfinished run of this config: {latest.path}",
            file=out,
            flush=True,
        )
        return replace(new, resume=True, run_dir=latest.path)
    # Its game was edited, and maybe put back as it was for an earlier run.
    earlier = (
        None
        if game_changed is None
        else _earlier_run_of_this_game(options.config_file, latest, config, served)
    )
    if earlier is None:
        print(f"not resuming {latest.path}: {why_not}; starting a new run", file=out, flush=True)
        return new
    print(
        f"not resuming {latest.path}: {why_not}; resuming {earlier.path}, the newest "
        "unfinished run of this config whose checkpoint was saved on the game as it is now",
        file=out,
        flush=True,
    )
    return replace(new, resume=True, run_dir=earlier.path)


def _why_not_resume(run: RunDir, config: TrainConfig) -> str | None:
    """Why ``--resume-latest`` does not resume ``run`` with ``config``, but for its game."""
    try:
        saved = run.load_config([])
    except (AgentError, OSError) as exc:
        return str(exc)
    if saved != config:
        keys = ", ".join(_differences(saved.model_dump(), config.model_dump()))
        return f"its config differs at {keys}"
    if finished(run, config) is not None:  # not a final model it has gone past
        return "it has finished"
    if run.is_locked():
        return "another process trains it now"
    return None


def _earlier_run_of_this_game(
    config_file: Path, latest: RunDir, config: TrainConfig, served: str | None
) -> RunDir | None:
    """The newest run of this config but ``latest`` that ``--resume-latest`` could
    resume, and whose newest checkpoint was saved on the game revision ``served``."""
    if served is None:
        return None
    for run in RunDir.runs_of(config_file):
        if run.path == latest.path or _why_not_resume(run, config) is not None:
            continue
        saved = _saved_revision(run, config)
        if saved is not None and saved[1] == served:
            return run
    return None


def _served_revision(config: TrainConfig, options: TrainOptions) -> str | None:
    """The revision of the game (an NES game's) the envapi serves now; None when it has
    none or cannot say now."""
    try:
        served = netgym.describe_env(
            config.env.id, options.url, options.token, timeout_s=GAME_CHECK_TIMEOUT_S
        )
    except NetgymError:
        return None
    revision = served.get("env_revision")
    return revision if isinstance(revision, str) else None


def _saved_revision(run: RunDir, config: TrainConfig) -> tuple[int, str | None] | None:
    """The step of ``run``'s newest complete checkpoint and the game revision it was
    saved on; None when it has none."""
    store = CheckpointStore(run.checkpoints, config.checkpoint.keep)
    for step in reversed(store.steps()):
        try:
            return step, read_directory(store.path(step), verify=False).info.get("env_revision")
        except CheckpointError:
            continue
    return None


def _game_changed(step: int, saved: str, served: str | None) -> str | None:
    """Why not to resume a run whose checkpoint at ``step`` was saved on game revision
    ``saved``: the envapi serves ``served`` now (its folder was edited); None when it
    does not, or cannot say now (the resume then checks it as it opens the env)."""
    if served is None or served == saved:
        return None
    return (
        f"its game has changed since its checkpoint at step {step:,} (revision {saved}, "
        f"now {served}: its game folder was edited)"
    )


def config_and_run_dir(options: TrainOptions) -> tuple[TrainConfig, RunDir | None]:
    """The config, and the run folder given (None: a new one of the default name)."""
    if not options.resume:
        if options.config_file is None:
            raise RunDirError("train needs a CONFIG file (or --run-dir D --resume)")
        config = load_config(options.config_file, options.overrides)
        return config, RunDir(options.run_dir) if options.run_dir else None
    if options.run_dir is None:
        raise RunDirError("--resume needs --run-dir: the run folder to continue")
    run = RunDir(options.run_dir)
    config = run.load_config(options.overrides)
    if options.config_file is not None:
        given = load_config(options.config_file, options.overrides)
        if given != config:
            keys = ", ".join(_differences(given.model_dump(), config.model_dump())) or "?"
            raise RunDirError(
                f"{options.config_file} differs from {run.config_file} at {keys}; --resume "
                "continues the run's own config: leave CONFIG out, or change it with --set"
            )
    return config, run


def prepare_run_dir(
    run: RunDir,
    config: TrainConfig,
    options: TrainOptions,
    store: CheckpointStore,
    out: TextIO,
) -> tuple[Checkpoint | None, str]:
    """Make a new run's folder, or find where a resume goes on from; returns that
    checkpoint (None: step 0) and the header to save the config with."""
    overrides = "".join(f"\n  --set {o}" for o in options.overrides)
    source = options.config_file or run.config_file
    how = "resumed" if options.resume else "netgym-train config as used"
    header = f"{how}, from {source}, {time.strftime('%c')}{overrides}"
    if not options.resume:
        run.create(config, header)
        print(f"run folder: {run.path}", file=out, flush=True)
        return None, header
    run.lock()  # before anything of the run is touched
    for leftover in [*store.remove_temporaries(), *remove_temporaries(run.path)]:
        print(f"removed an incomplete checkpoint: {leftover}", file=out, flush=True)
    checkpoint = store.latest()
    if checkpoint is None:  # no saved model that the config must fit: any of it may change
        print(f"{run.path} has no complete checkpoint: starting at step 0", file=out, flush=True)
        return None, header
    if isinstance(saved := checkpoint.info.get("config"), dict):
        # What the checkpoint was saved with: an edit of config.yaml counts, and a
        # --set that undoes one is no change.
        since = f" since its checkpoint at step {checkpoint.step:,} was saved"
    else:  # a checkpoint of an older netgym that recorded no config: --set is all
        saved, since = fixed_sections(run.load_config([])), ""
    if changed := _fixed_changes(saved, config):
        raise RunDirError(
            f"the run's config ({run.config_file}, with any --set) changes "
            f"{', '.join(changed)}{since}, which a resumed run cannot change: the saved model "
            "and its statistics keep what they were made with; undo the change, or start a "
            "new run"
        )
    return checkpoint, header


def finished(run: RunDir, config: TrainConfig) -> str | None:
    """What to say when ``run`` has finished as ``config`` asks (None: it has not):
    its final model reached ``total_timesteps``, or the goal that ended it is the same."""
    try:
        info = read_directory(run.final, verify=False).info
    except CheckpointError:  # no final model (yet)
        return None
    step, goal = info.get("step"), info.get("goal")
    if not isinstance(step, int):
        return None
    if step >= config.total_timesteps:
        more = f"--set total_timesteps=<more than {step}>"
    elif goal is not None and goal == config.eval.stop_at_mean_return:
        more = "--set eval.stop_at_mean_return=<a higher return, or null>"
    else:
        return None
    return (
        f"{run.path} has finished: its final model (step {step:,}) is in {run.final}; "
        f"to train it further, resume with {more}"
    )


def fixed_sections(config: TrainConfig) -> dict[str, Any]:
    """The config sections a resumed run cannot change, as a checkpoint records them."""
    data = config.model_dump(mode="json")
    return {section: data[section] for section in FIXED_ON_RESUME}


def _fixed_changes(saved: dict[str, Any], config: TrainConfig) -> list[str]:
    """The keys of ``FIXED_ON_RESUME`` that ``config`` sets otherwise than ``saved``."""
    changed = _differences(saved, fixed_sections(config))
    free = {"env.reconnect_timeout_s"}  # how long to wait for the server: no part of the model
    if config.algo.name != "dqn":  # on-policy: the model takes the new env's count
        free.add("env.num_envs")
    return [key for key in changed if key not in free]


def resumed_header(run: RunDir, header: str) -> str:
    """The saved config's header, where the run came from, with this resume added."""
    try:
        lines = run.config_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return header
    before = [line[2:] for line in lines if line.startswith("# ")]
    return "\n".join([*before, header])


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = list(dict.fromkeys([*a, *b]))
        return [d for k in keys for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]
