"""``train``: one training run from a config into a run folder, resumable at any time.

The order is deliberate: read and check the config, pick the device (and stop
if a required GPU is missing), and only then touch the run folder and the
server. A run that ends, is stopped by SIGINT/SIGTERM or loses its server
leaves a checkpoint to ``--resume`` from.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TextIO, cast

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat, configure
from stable_baselines3.common.vec_env import VecEnv
from torch.utils.tensorboard import SummaryWriter

import netgym
from netgym.errors import NetgymError, ReconnectFailedError
from netgym_agent import algorithms
from netgym_agent.callbacks import PeriodicTasks, ProgressLine, StopOnRequest
from netgym_agent.checkpoints import (
    Checkpoint,
    CheckpointStore,
    read_directory,
    write_directory,
)
from netgym_agent.config import TrainConfig
from netgym_agent.device import announce, resolve_device
from netgym_agent.envs import (
    check_env_fits,
    check_same_game,
    env_revision,
    make_env,
    normalize_env,
    reconnect_count,
)
from netgym_agent.errors import (
    AgentError,
    CheckpointError,
    ConfigError,
    TrainingError,
)
from netgym_agent.evaluation import EvaluationInterrupted, evaluate
from netgym_agent.resume import (
    config_and_run_dir,
    finished,
    fixed_sections,
    prepare_run_dir,
    resolve_latest,
    resumed_header,
)
from netgym_agent.rundir import RunDir
from netgym_agent.signals import StoppingOutput, StopRequested

# How to go on with a stopped run, where the command is not what starts the
# trainer: the Compose agent sets it (there, `docker compose start` resumes).
CONTINUE_WITH_VARIABLE = "NETGYM_CONTINUE_WITH"
_EVENT_FILES = "events.out.tfevents.*"  # what a TensorBoard writer names its files


@dataclass(frozen=True)
class TrainOptions:
    """What the command line says: the config, the run folder, the server."""

    config_file: Path | None
    run_dir: Path | None = None
    resume: bool = False
    resume_latest: bool = False  # resume the newest unfinished run of this config, if any
    url: str | None = None
    token: str | None = None
    overrides: list[str] = field(default_factory=list)


def train(options: TrainOptions, out: TextIO = sys.stdout) -> int:
    """Train as ``options`` say; returns the exit status (0 done, 128+N stopped by signal N).

    Raises:
        AgentError: a bad config, a missing GPU, a run folder that cannot be used.
        netgym.errors.NetgymError: the server failed (after a checkpoint was saved).
    """
    options = resolve_latest(options, out)
    config, given = config_and_run_dir(options)
    if options.resume and given is not None and (done := finished(given, config)):
        print(done, file=out, flush=True)
        return 0
    device = resolve_device(config)
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    announce(device, out)
    run = given or RunDir(RunDir.claim_default(options.config_file))
    store = CheckpointStore(run.checkpoints, keep=config.checkpoint.keep)
    # Made by this process (and so to remove if nothing is saved in it): found
    # by making it, as another process may be given the same new folder.
    made_folder = not options.resume and (given is None or given.make_folder())
    try:
        checkpoint, header = prepare_run_dir(run, config, options, store, out)
    except BrokenPipeError:  # at its last line: the output's pipe closed (`| head -3`)
        if not options.resume:
            _forget_new_run(run, made_folder)
        raise
    except NetgymError:  # a folder that holds a run, or that cannot be written
        # Made here, and not claimed by another process given the same new folder
        # (an empty folder is no one's): nothing of another run's is lost.
        if made_folder and run.holds_lock():
            shutil.rmtree(run.path, ignore_errors=True)
        elif made_folder:
            with contextlib.suppress(OSError):
                run.path.rmdir()  # only if it is empty
        run.unlock()
        raise
    try:
        with StopRequested() as stop:
            output = cast(TextIO, StoppingOutput(out, stop))
            return _Run(config, run, store, options, stop, output).go(checkpoint, device, header)
    except (NetgymError, _StoppedBeforeTraining) as exc:
        # A bad config, the envapi unreachable or refusing the env, before any
        # checkpoint: the folder holds no run, so that the same command works
        # once the cause is fixed.
        if not options.resume and nothing_recorded(run, store) and not _trained(exc):
            _forget_new_run(run, made_folder)
            if made_folder:
                print(f"run folder removed (nothing saved yet): {run.path}", file=out, flush=True)
        if isinstance(exc, _StoppedBeforeTraining):
            print(f"stopped by {exc.stop.name} before the first step", file=out, flush=True)
            return exc.stop.exit_status
        raise
    finally:
        run.unlock()  # for a next train() in this process (a process's exit frees it too)


def nothing_recorded(run: RunDir, store: CheckpointStore) -> bool:
    """Whether a run has saved nothing yet: no checkpoint, and no evaluation (nor so a
    ``best/`` model), which can come before the first checkpoint."""
    return not store.steps() and not run.evaluations.exists()


def _trained(exc: BaseException) -> bool:
    """Whether a run stopped by ``exc`` trained a step first: its curves are kept then."""
    return isinstance(exc, TrainingError) and exc.details.get("step", 0) > 0


def _raised_by_netgym(exc: BaseException) -> bool:
    """Whether ``exc`` was raised in netgym's own code, not in SB3's or PyTorch's."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return False
    where = Path(frames[-1].filename).resolve()
    return any(where.is_relative_to(folder) for folder in _OUR_CODE)


_OUR_CODE = (Path(netgym.__file__).resolve().parent, Path(__file__).resolve().parent)


def _forget_new_run(run: RunDir, made_folder: bool) -> None:
    """Undo a new run that saved nothing: its folder, or what it put in one given."""
    if made_folder:
        shutil.rmtree(run.path, ignore_errors=True)
    else:
        run.config_file.unlink(missing_ok=True)
    run.unlock()


class _StoppedBeforeTraining(Exception):
    """A stop came while the envs could not be reached, before anything was learned."""

    def __init__(self, stop: StopRequested) -> None:
        super().__init__(stop.name)
        self.stop = stop


class _Run:
    """One process's part of a run: from its start (or resume) step to its end."""

    def __init__(
        self,
        config: TrainConfig,
        run: RunDir,
        store: CheckpointStore,
        options: TrainOptions,
        stop: StopRequested,
        out: TextIO,
    ) -> None:
        self.config = config
        self.run = run
        self.store = store
        self.options = options
        self.stop = stop
        self.out = out
        self.best_return, self.best_step = _best_so_far(run)
        self.goal_reached = False
        self.model: BaseAlgorithm | None = None
        self.progress: ProgressLine | None = None
        self.start = 0  # the step this process started at: its Monitor CSV's name

    def go(self, checkpoint: Checkpoint | None, device: torch.device, header: str) -> int:
        """Train from ``checkpoint`` (or from scratch); returns the exit status.

        ``header``: the config's header, saved once a resume's env has checked out.
        """
        start = self.start = checkpoint.step if checkpoint else 0
        env: VecEnv | None = None
        try:
            env = self._open_env(checkpoint, start)
            self._check_eval_env()
            model = self.model = self._model(checkpoint, env, device)
            if self.options.resume:
                self._settle_resume(checkpoint, header)
            self.progress = ProgressLine(
                self.config.total_timesteps,
                self.config.progress_every_s,
                episodes=int(checkpoint.info.get("episodes", 0)) if checkpoint else 0,
                best=self._best_text,
                reconnects=partial(reconnect_count, env),
                out=self.out,
            )
            callbacks = CallbackList(
                [
                    self.progress,
                    PeriodicTasks(
                        checkpoint_every=self.config.checkpoint.every_steps,
                        evaluate_every=self.config.eval.every_steps,
                        start=start,
                        evaluated_at=min(start, max(_last_eval(self.run), 0)),
                        checkpoint=self._checkpoint,
                        evaluate=self._evaluate,
                        stopping=lambda: bool(self.stop),
                    ),
                    StopOnRequest(self.stop, lambda: self.goal_reached),
                ]
            )
            remaining = self.config.total_timesteps - model.num_timesteps
            try:
                if remaining > 0:
                    stopped = self._learn(model, remaining, callbacks, checkpoint)
                    if stopped is not None:
                        return stopped
                    self.progress.print_last_line()  # its numbers come from the model learn() ran
                return self._finish(model)
            except BrokenPipeError:
                raise
            except OSError:
                # The run folder's (a full disk, say): the command prints the error.
                self._say(f"training stopped at step {model.num_timesteps:,}{self._then()}")
                raise
        finally:
            if env is not None:
                env.close()

    def _learn(
        self,
        model: BaseAlgorithm,
        steps: int,
        callbacks: CallbackList,
        checkpoint: Checkpoint | None,
    ) -> int | None:
        """``model.learn()`` and what its failures become: the exit status when a stop
        cut a reconnect short, else None."""
        try:
            model.learn(
                steps,
                callback=callbacks,
                log_interval=algorithms.log_interval(model),
                reset_num_timesteps=False,
            )
        except NetgymError as exc:
            if checkpoint is None and model.num_timesteps == 0:
                # Nothing learned (the first reset failed, say): nothing to save.
                if self.stop:
                    raise _StoppedBeforeTraining(self.stop) from exc
                raise
            path = self._checkpoint()
            if self.stop:  # a stop cut a reconnect short: it is the stop's exit
                return self._stopped(model.num_timesteps, path)
            self._failed(exc, model.num_timesteps, path)
            raise
        except OSError:
            raise  # the run folder's: go() says how to go on
        except Exception as exc:
            if _raised_by_netgym(exc):
                raise  # a bug of ours: its traceback is what helps
            raise self._crashed(exc, model.num_timesteps) from exc
        return None

    def _failed(self, exc: NetgymError, step: int, path: Path) -> None:
        """Say where training stopped for ``exc`` and how to go on (the error itself
        follows, from the command)."""
        if isinstance(exc, ReconnectFailedError):  # the config's key for it
            exc.message = exc.message.replace(
                "Raise reconnect_timeout_s", "Raise env.reconnect_timeout_s"
            )
            exc.args = (exc.message,)
        resume = continue_with(self.run.path)
        if {"served", "changed"} & set(exc.details):  # the game's revision changed
            then = (
                "its game was edited: put the game folder back as it was and "
                f"continue with: {resume}; or start a new run (--resume-latest starts one)"
            )
        elif isinstance(exc, ConfigError):
            command = f"{resume_command(self.run.path)} --set KEY=VALUE"
            then = f"continue with: {command} (for the key the error names)"
        else:
            then = f"continue with: {resume}"
        self._say(f"training stopped at step {step:,}; checkpoint {path}; {then}")

    def _then(self) -> str:
        """After a failure inside ``learn()``: where the run goes on from, and how."""
        saved = self.store.steps()
        if saved:
            return (
                f"; the last checkpoint is at step {max(saved):,}: once the cause is fixed, "
                f"continue with: {continue_with(self.run.path)} (a resumed run keeps its "
                "algo.hyperparams: to change one, start a new run)"
            )
        return (
            "; no checkpoint was saved (it starts again at step 0): once the cause is fixed, "
            f"continue with: {continue_with(self.run.path)} --set KEY=VALUE (for a value to "
            "change)"
        )

    def _crashed(self, exc: Exception, step: int) -> TrainingError:
        """The error for SB3 or PyTorch failing inside ``learn()``. No checkpoint is
        saved: the model may be half way through an update."""
        algo = self.config.algo
        removed = not self.options.resume and nothing_recorded(self.run, self.store) and step == 0
        then = "" if removed else self._then()
        return TrainingError(
            f"training failed at step {step:,}: stable-baselines3's {algo.name.upper()} "
            f"or PyTorch raised {type(exc).__name__}: {exc} (a value in algo.hyperparams "
            f"that it refuses only once it trains? out of memory?){then}",
            details={"step": step},
        )

    def _settle_resume(self, checkpoint: Checkpoint | None, header: str) -> None:
        """What a resume changes in the run folder, once it is sure to go on from
        ``checkpoint`` (None: step 0): a resume refused for a changed env, or whose
        model does not load, changes none of this."""
        step = checkpoint.step if checkpoint else 0
        self.run.truncate_evaluations(step)
        self.run.truncate_monitor(step, checkpoint.info if checkpoint else {})
        if (aside := self.run.set_aside_best_after(step)) is not None:
            self._say(
                f"set aside {self.run.best.name}/, saved past step {step:,} where the run "
                f"goes on: {aside}"
            )
            self.best_return, self.best_step = None, None
        self.run.save_config(self.config, resumed_header(self.run, header))

    def _open_env(self, checkpoint: Checkpoint | None, start: int) -> VecEnv:
        env = make_env(
            self.config,
            num_envs=self.config.env.num_envs,
            url=self.options.url,
            token=self.options.token,
            monitor_file=self.run.monitor_file(start),
            stopping=lambda: bool(self.stop),
        )
        if checkpoint is not None:
            try:
                check_env_fits(env, self.config, *algorithms.saved_spaces(checkpoint.path))
                revision = checkpoint.info.get("env_revision")
                check_same_game(env, self.config, revision, "this run's last checkpoint")
            except BaseException:
                env.close()
                raise
        statistics = checkpoint.path / algorithms.VECNORMALIZE_FILE if checkpoint else None
        if statistics is not None and not statistics.exists():
            statistics = None
        return normalize_env(env, self.config, statistics=statistics, training=True)

    def _check_eval_env(self) -> None:
        """Open the evaluations' session once, and close it: what the server refuses
        of it (an eval.num_envs above its limit) stops the run before training, not
        at its first evaluation, maybe hours later."""
        settings = self.config.eval
        if settings.every_steps:
            make_env(
                self.config,
                num_envs=min(settings.num_envs, settings.episodes),  # as evaluations open
                url=self.options.url,
                token=self.options.token,
                stopping=lambda: bool(self.stop),
                num_envs_key="eval.num_envs",
            ).close()

    def _model(
        self, checkpoint: Checkpoint | None, env: VecEnv, device: torch.device
    ) -> BaseAlgorithm:
        if checkpoint is None:
            model = algorithms.new_model(self.config, env, device)
        else:
            model = algorithms.load_model(self.config, checkpoint.path, env, device)
            model.set_random_seed((self.config.seed + checkpoint.step) % 2**32)
            self._say(
                f"resumed from {checkpoint.path} at step {model.num_timesteps:,} "
                f"of {self.config.total_timesteps:,}"
            )
            refill = algorithms.refill_replay_buffer(self.config, model, checkpoint.path)
            if refill is not None:
                self._say(
                    f"the checkpoint has no replay buffer (checkpoint.save_replay_buffer is "
                    f"false): it fills again for {refill:,} steps (learning_starts), with random "
                    "actions as at the start, before learning goes on"
                )
        before = set(self.run.tensorboard.glob(_EVENT_FILES))
        if checkpoint is None and self.options.resume:
            # Starting again at step 0: all that was logged is of steps played again.
            for path in before:
                path.unlink(missing_ok=True)
        logger = configure(str(self.run.tensorboard), ["tensorboard"])
        if checkpoint is not None:
            # The purge opens a writer of its own: the one configure made stays empty.
            unused = set(self.run.tensorboard.glob(_EVENT_FILES)) - before
            _purge_tensorboard_from(logger, self.run.tensorboard, checkpoint.step + 1)
            for path in unused:
                path.unlink(missing_ok=True)
        model.set_logger(logger)
        return model

    def _finish(self, model: BaseAlgorithm) -> int:
        step = model.num_timesteps
        path = self._checkpoint()
        evaluated = self.goal_reached or _last_eval(self.run) >= step
        if not self.stop and self.config.eval.every_steps and not evaluated:
            try:
                self._evaluate()
            except NetgymError as exc:
                self._failed(exc, step, path)
                raise
        if self.stop:
            return self._stopped(step, path)
        goal = self.config.eval.stop_at_mean_return if self.goal_reached else None
        info = {
            "step": step,
            "goal": goal,
            "env_revision": env_revision(model.get_env()),
            "config": fixed_sections(self.config),
        }
        write_directory(self.run.path, "final", self._write_policy, info)
        why = "goal reached: " if self.goal_reached else ""
        self._say(f"{why}training done at step {step:,}; final model in {self.run.final}")
        return 0

    def _stopped(self, step: int, path: Path) -> int:
        self._say(
            f"stopped by {self.stop.name} at step {step:,}; checkpoint {path}\n"
            f"continue with: {continue_with(self.run.path)}"
        )
        return self.stop.exit_status

    def _checkpoint(self) -> Path:
        model = self._model_now()
        path = self.store.path(model.num_timesteps)
        if not path.exists():
            episodes = self.progress.episodes if self.progress else 0
            started = time.monotonic()
            info = {
                "episodes": episodes,
                **self.run.monitor_mark(self.start),
                "config": fixed_sections(self.config),
                "env_revision": env_revision(model.get_env()),
            }
            path = self.store.save(model.num_timesteps, self._write_model, info)
            self._say(f"checkpoint {path} ({time.monotonic() - started:.1f} s)")
            if self.progress:
                self.progress.leave_out(time.monotonic() - started)
        return path

    def _write_model(self, directory: Path) -> None:
        """A checkpoint's files: the replay buffer too, when the config keeps it."""
        algorithms.save_model_files(
            self._model_now(), directory, replay_buffer=self.config.checkpoint.save_replay_buffer
        )

    def _write_policy(self, directory: Path) -> None:
        """``best/`` and ``final/``: for evaluation and use, no replay buffer (GBs with DQN)."""
        algorithms.save_model_files(self._model_now(), directory, replay_buffer=False)

    def _evaluate(self) -> None:
        started = time.monotonic()
        try:
            self._evaluate_and_record()
        finally:
            if self.progress:
                self.progress.leave_out(time.monotonic() - started)

    def _evaluate_and_record(self) -> None:
        model = self._model_now()
        settings = self.config.eval
        try:
            result = evaluate(
                model,
                self.config,
                url=self.options.url,
                token=self.options.token,
                episodes=settings.episodes,
                num_envs=settings.num_envs,
                deterministic=settings.deterministic,
                statistics=model.get_vec_normalize_env(),
                should_stop=lambda: bool(self.stop),
                revision=env_revision(model.get_env()),
            )
        except EvaluationInterrupted:
            return
        record = result.to_record()
        self.run.append_evaluation(record)
        for key in ("mean_return", "std_return", "mean_length"):
            model.logger.record(f"eval/{key}", record[key])
        # Written now: the final evaluation, and one that reaches the goal, come
        # after the last dump that learn() makes.
        _dump_only(model.logger, "eval/", result.step)
        best = self.best_return is None or result.mean_return > self.best_return
        self._say(
            f"eval at step {result.step:,}: return {result.mean_return:.2f} "
            f"± {result.std_return:.2f} over {len(result.returns)} episodes, "
            f"length {record['mean_length']:.0f}, {result.wall_s:.1f} s"
            + result.reconnect_note
            + (" (new best)" if best else "")
        )
        if best:
            self.best_return, self.best_step = result.mean_return, result.step
            info = {
                **record,
                "env_revision": env_revision(model.get_env()),
                "config": fixed_sections(self.config),
            }
            write_directory(self.run.path, "best", self._write_policy, info)
        goal = settings.stop_at_mean_return
        if goal is not None and result.mean_return >= goal:
            self.goal_reached = True

    def _best_text(self) -> str:
        if self.best_return is None:
            return ""
        at = f" at {self.best_step:,}" if self.best_step is not None else ""
        return f"best eval {self.best_return:.2f}{at}"

    def _model_now(self) -> BaseAlgorithm:
        if self.model is None:
            raise AgentError("internal: the model is not built yet")
        return self.model

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)


def _best_so_far(run: RunDir) -> tuple[float | None, int | None]:
    """The mean return and step of the run's best model, from its manifest."""
    if not run.best.is_dir():
        return None, None
    try:
        info = read_directory(run.best, verify=False).info
    except CheckpointError:
        return None, None
    value, step = info.get("mean_return"), info.get("step")
    if not isinstance(value, int | float):
        return None, None
    return float(value), step if isinstance(step, int) else None


def _last_eval(run: RunDir) -> int:
    records = run.read_evaluations()
    return int(records[-1]["step"]) if records else -1


def _dump_only(logger: Logger, prefix: str, step: int) -> None:
    """Write the values under ``prefix`` at ``step``, keeping the others (``train/*``)
    for learn()'s own next dump: written now, they would land at this step as a
    second point beside the last dump's, and the next dump would have none. (After
    learn()'s last dump, its last update's values are never written, as in SB3.)"""
    others = [key for key in logger.name_to_value if not key.startswith(prefix)]
    kept = [
        (key, logger.name_to_value.pop(key), logger.name_to_count.pop(key, 0)) for key in others
    ]
    excluded = {k: logger.name_to_excluded.pop(k) for k in others if k in logger.name_to_excluded}
    logger.dump(step=step)
    for key, value, count in kept:
        logger.name_to_value[key] = value
        logger.name_to_count[key] = count
    logger.name_to_excluded.update(excluded)


def _purge_tensorboard_from(logger: Logger, folder: Path, step: int) -> None:
    """Have TensorBoard drop what a run killed past its checkpoint logged from ``step`` on.

    The resumed run logs those steps again; without the purge each curve would
    show them twice, zig-zagging back at the resume. What was logged at the
    checkpoint's own step (its evaluation, say) stays.
    """
    for output in logger.output_formats:
        if isinstance(output, TensorBoardOutputFormat):
            output.writer.close()
            output.writer = SummaryWriter(log_dir=str(folder), purge_step=step)


def continue_with(run_path: Path) -> str:
    """What goes on with the run in ``run_path`` after a stop, here."""
    return os.environ.get(CONTINUE_WITH_VARIABLE, "").strip() or resume_command(run_path)


def resume_command(run_path: Path) -> str:
    """The command that goes on with the run in ``run_path``."""
    return f"netgym-train train --run-dir {run_path} --resume"
