"""The training command end to end, on a real envapi: learning, resume, stop on signal."""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from stable_baselines3 import PPO
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from netgym_agent import callbacks
from netgym_agent.checkpoints import CheckpointStore, read_directory
from netgym_agent.errors import RunDirError, TrainingError
from netgym_agent.rundir import RunDir
from netgym_agent.trainer import CONTINUE_WITH_VARIABLE, TrainOptions, continue_with, train
from tests.agent.helpers import (
    CONFIGS,
    ROOT,
    SMALL_CARTPOLE,
    checkpoint_dirs,
    clean_env,
    evaluations,
    run_evaluate,
    run_train,
    start_train,
    train_command,
    write_config,
)
from tests.servers import EnvApi


def wait_until_gone(server: EnvApi, before: list[dict], timeout: float = 15) -> None:
    """Until no session is live but those of ``before`` (other tests' may linger)."""
    known = {session["session_id"] for session in before}
    deadline = time.monotonic() + timeout
    while (
        new := [s for s in server.live_sessions() if s["session_id"] not in known]
    ) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert new == [], new


@pytest.mark.slow
def test_ppo_solves_remote_cartpole_within_100k_steps(envapi: EnvApi, tmp_path: Path) -> None:
    """Done-when 1: the zoo's CartPole PPO, through the real command, evaluates at >= 475.

    The run stops at the first evaluation that reaches 475 (a config option);
    with seed 0 that is the one at 20,224 steps, about 25 s on 2 busy cores
    (the whole 100,000 steps take about 80 s).
    """
    run_dir = tmp_path / "run"
    started = time.monotonic()
    result = run_train(
        envapi,
        str(CONFIGS / "cartpole_ppo.yaml"),
        "--run-dir",
        str(run_dir),
        "--set",
        "eval.stop_at_mean_return=475",
        timeout=600,
    )
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stdout
    records = evaluations(run_dir)
    solved = [r for r in records if r["step"] <= 100_000 and r["mean_return"] >= 475]
    assert solved, f"no evaluation reached 475 within 100,000 steps: {records}\n{result.stdout}"
    assert all(r["deterministic"] and r["episodes"] == 10 for r in records)
    assert "goal reached" in result.stdout
    assert read_directory(run_dir / "best").info["mean_return"] >= 475
    print(f"solved at step {solved[0]['step']:,} in {wall:.0f} s")


def test_resume_continues_the_step_count(envapi: EnvApi, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "small.yaml",
        {**SMALL_CARTPOLE, "eval": {"every_steps": 512, "episodes": 2, "num_envs": 2}},
    )
    run_dir = tmp_path / "run"
    first = run_train(envapi, str(config), "--run-dir", str(run_dir))
    assert first.returncode == 0, first.stdout
    assert "training done at step 1,024" in first.stdout
    assert read_directory(run_dir / "final").info["step"] == 1024

    second = run_train(
        envapi, "--run-dir", str(run_dir), "--resume", "--set", "total_timesteps=2048"
    )
    assert second.returncode == 0, second.stdout
    assert re.search(r"resumed from \S+step_000001024 at step 1,024 of 2,048", second.stdout)
    assert "training done at step 2,048" in second.stdout

    model = PPO.load(run_dir / "final" / "model.zip", device="cpu")
    assert model.num_timesteps == 2048
    # 32 rollouts of 16 steps x 4 envs, 2 epochs each: as if never interrupted.
    assert model._n_updates == 2048 // 64 * 2
    assert model._total_timesteps == 2048
    steps = [r["step"] for r in evaluations(run_dir)]
    assert steps == sorted(steps) and steps[-1] == 2048 and len(steps) == 4
    assert len(list((run_dir / "monitor").glob("*.monitor.csv"))) == 2
    assert "total_timesteps: 2048" in (run_dir / "config.yaml").read_text()
    # One event file a run, none left empty by the resume.
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 2
    # Every evaluation reaches TensorBoard, the final one (after learn() returned) too.
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("eval/mean_return")] == steps
    # An evaluation inside learn() writes only its own values: each train/* value
    # lands once, at the step learn() dumps it.
    learning_rates = [e.step for e in events.Scalars("train/learning_rate")]
    assert len(learning_rates) == len(set(learning_rates)) > 1

    # Stopped between its last checkpoint and its final model: a resume finishes it.
    shutil.rmtree(run_dir / "final")
    finished = run_train(envapi, "--run-dir", str(run_dir), "--resume")
    assert finished.returncode == 0, finished.stdout
    assert "training done at step 2,048" in finished.stdout
    assert read_directory(run_dir / "final").info["step"] == 2048

    # The run's eval settings and seeds: the return of its evaluation at that step.
    evaluated = run_evaluate(envapi, run_dir, "--model", "final")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "netgym-train: evaluating on the CPU" in evaluated.stdout  # as the run trained
    record = json.loads(evaluated.stdout.splitlines()[-1])
    assert (record["step"], record["episodes"]) == (2048, 2)
    assert record["returns"] == evaluations(run_dir)[-1]["returns"]

    again = run_train(envapi, str(config), "--run-dir", str(run_dir))
    assert again.returncode == 2 and "--resume" in again.stdout
    other = write_config(tmp_path / "other.yaml", {**SMALL_CARTPOLE, "seed": 5})
    mismatch = run_train(envapi, str(other), "--run-dir", str(run_dir), "--resume")
    assert mismatch.returncode == 2 and "differs" in mismatch.stdout
    assert "seed" in mismatch.stdout

    # A GPU run evaluated on a machine without one: --device says where.
    gpu_run = tmp_path / "gpu-run"
    shutil.copytree(run_dir, gpu_run, ignore=shutil.ignore_patterns(".lock"))
    saved = gpu_run / "config.yaml"
    saved.write_text(re.sub(r"(?m)^device: \w+$", "device: cuda", saved.read_text()))
    one_episode = ("--model", "final", "--episodes", "1", "--num-envs", "1")
    refused = run_evaluate(envapi, gpu_run, *one_episode)
    assert refused.returncode != 0 and "cuda" in refused.stderr
    moved = run_evaluate(envapi, gpu_run, *one_episode, "--device", "cpu")
    assert moved.returncode == 0, moved.stderr
    # In the GPU container (NETGYM_REQUIRE_GPU=1), which is about training, too.
    required = {"NETGYM_REQUIRE_GPU": "1"}
    moved = run_evaluate(envapi, gpu_run, *one_episode, "--device", "cpu", **required)
    assert moved.returncode == 0, moved.stderr


def test_resume_latest_continues_an_unfinished_run_of_the_same_config(
    envapi: EnvApi, tmp_path: Path
) -> None:
    """What the Compose agent runs: a restarted container goes on with its run."""
    config = write_config(tmp_path / "small.yaml", SMALL_CARTPOLE)
    runs = tmp_path / "runs"
    first = run_train(envapi, "small.yaml", "--resume-latest", cwd=tmp_path)
    assert first.returncode == 0, first.stdout
    (run_a,) = runs.iterdir()
    assert run_a.name.startswith("small-")
    _stop_at_512(run_a)

    second = run_train(envapi, str(config), "--resume-latest", cwd=tmp_path)
    assert second.returncode == 0, second.stdout
    assert f"resuming the newest unfinished run of this config: runs/{run_a.name}" in (
        second.stdout
    )
    assert re.search(r"resumed from \S+step_000000512 at step 512 of 1,024", second.stdout)
    assert (run_a / "final").is_dir() and len(list(runs.iterdir())) == 1

    # Finished, or made with another config: a new run each, saying why.
    time.sleep(1.1)  # run folders are named to the second
    third = run_train(envapi, "small.yaml", "--resume-latest", cwd=tmp_path)
    assert f"not resuming runs/{run_a.name}: it has finished" in third.stdout, third.stdout
    time.sleep(1.1)
    seed = ("--set", "seed=1")
    other = run_train(envapi, "small.yaml", "--resume-latest", *seed, cwd=tmp_path)
    assert "its config differs at seed; starting a new run" in other.stdout, other.stdout
    assert third.returncode == other.returncode == 0
    run_c = max(runs.iterdir(), key=lambda run: (run / "config.yaml").stat().st_mtime)
    assert len(list(runs.iterdir())) == 3

    # A run that another process trains now is left alone.
    _stop_at_512(run_c)
    with (run_c / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        taken = run_train(envapi, "--run-dir", str(run_c), "--resume", cwd=tmp_path)
        assert taken.returncode == 2 and "being trained by another process" in taken.stdout
        time.sleep(1.1)
        beside = run_train(envapi, "small.yaml", "--resume-latest", *seed, cwd=tmp_path)
        assert "another process trains it now; starting a new run" in beside.stdout
    assert beside.returncode == 0, beside.stdout
    assert len(list(runs.iterdir())) == 4

    both = run_train(envapi, "small.yaml", "--resume-latest", "--run-dir", "x", cwd=tmp_path)
    assert both.returncode == 2 and "leave out" in both.stdout


def test_resume_latest_goes_on_with_a_run_extended_past_its_final_model(
    envapi: EnvApi, tmp_path: Path
) -> None:
    write_config(tmp_path / "small.yaml", SMALL_CARTPOLE)
    first = run_train(envapi, "small.yaml", "--resume-latest", cwd=tmp_path)
    assert first.returncode == 0, first.stdout
    (run,) = (tmp_path / "runs").iterdir()
    # As --resume --set total_timesteps=2048 saves it, stopped before its new end:
    saved = run / "config.yaml"
    saved.write_text(
        re.sub(r"(?m)^total_timesteps: 1024$", "total_timesteps: 2048", saved.read_text())
    )
    longer = ("--set", "total_timesteps=2048")
    more = run_train(envapi, "small.yaml", "--resume-latest", *longer, cwd=tmp_path)
    assert more.returncode == 0, more.stdout
    assert f"resuming the newest unfinished run of this config: runs/{run.name}" in more.stdout
    assert re.search(r"at step 1,024 of 2,048", more.stdout), more.stdout
    assert len(list((tmp_path / "runs").iterdir())) == 1


def _stop_at_512(run_dir: Path) -> None:
    """Make a finished run look as if it had been stopped at step 512."""
    shutil.rmtree(run_dir / "final")
    for late in [c for c in checkpoint_dirs(run_dir) if c.name > "step_000000512"]:
        shutil.rmtree(late)


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_folder(
    envapi: EnvApi, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    typo = write_config(
        tmp_path / "typo.yaml", {**SMALL_CARTPOLE, "env": {"id": "CartPol-v1", "num_envs": 2}}
    )
    result = run_train(envapi, str(typo), "--run-dir", str(run_dir))
    assert result.returncode == 2, result.stdout
    assert "env.id: no env 'CartPol-v1' is served here; did you mean CartPole-v1" in result.stdout
    assert not run_dir.exists()  # the same command works once the config is fixed
    assert f"run folder removed (nothing saved yet): {run_dir}" in result.stdout
    config = write_config(tmp_path / "small.yaml", SMALL_CARTPOLE)
    no_token = run_train(None, str(config), "--run-dir", str(run_dir), "--url", envapi.url)
    assert no_token.returncode == 1
    assert "netgym-train sends --token, else $NETGYM_TOKEN" in no_token.stdout
    assert not run_dir.exists()
    # An env that fails at its first reset: no step-0 checkpoint, no folder.
    never = write_config(
        tmp_path / "never.yaml",
        {**SMALL_CARTPOLE, "env": {"id": "netgym-test/RaiseOnReset-v0", "num_envs": 2}},
    )
    failed = run_train(envapi, str(never), "--run-dir", str(run_dir))
    assert failed.returncode == 1, failed.stdout
    assert "this env never starts, on purpose" in failed.stdout
    assert "checkpoint" not in failed.stdout.split("this env never starts")[0], failed.stdout
    assert not run_dir.exists()


@pytest.mark.parametrize(
    ("hyperparams", "status", "error"),
    [
        (  # SB3 would find out only at its first update, after the first rollout
            {"n_epochs": 0},
            2,
            r"algo.hyperparams.n_epochs: expected a value of at least 1, got 0",
        ),
        (  # checked with the config: PyTorch would find out later, and name no key
            {"policy_kwargs": {"net_arch": [-5]}},
            2,
            r"algo.hyperparams.policy_kwargs: net_arch: a layer of -5 units; layers have 1 or more",
        ),
        (  # SB3 finds out as the policy is made: FlattenExtractor takes no size
            {"policy_kwargs": {"features_extractor_kwargs": {"size": 8}}},
            2,
            r"algo: stable-baselines3's PPO refused algo.hyperparams .*size",
        ),
    ],
    ids=["at-the-first-update", "a-layer-of-no-units", "a-keyword-sb3-does-not-take"],
)
def test_hyperparameters_that_sb3_refuses_are_one_error_and_leave_no_folder(
    envapi: EnvApi, tmp_path: Path, hyperparams: dict[str, Any], status: int, error: str
) -> None:
    algo = SMALL_CARTPOLE["algo"]
    config = {
        **SMALL_CARTPOLE,
        "algo": {**algo, "hyperparams": {**algo["hyperparams"], **hyperparams}},
    }
    run_dir = tmp_path / "run"
    result = run_train(
        envapi, str(write_config(tmp_path / "bad.yaml", config)), "--run-dir", str(run_dir)
    )
    assert result.returncode == status, result.stdout
    assert re.search(error, result.stdout), result.stdout
    assert "Traceback" not in result.stdout
    assert not run_dir.exists()  # the same command works once the config is fixed


def test_a_policy_for_dict_observations_on_a_box_is_a_config_error(
    envapi: EnvApi, tmp_path: Path
) -> None:
    """SB3 failed on it with an AttributeError: a traceback, and the run folder stayed."""
    config = {**SMALL_CARTPOLE, "algo": {**SMALL_CARTPOLE["algo"], "policy": "MultiInputPolicy"}}
    run_dir = tmp_path / "run"
    result = run_train(
        envapi, str(write_config(tmp_path / "dict.yaml", config)), "--run-dir", str(run_dir)
    )
    assert result.returncode == 2, result.stdout
    assert "algo.policy: MultiInputPolicy is for Dict observations, and CartPole-v1's" in (
        result.stdout
    )
    assert "Traceback" not in result.stdout
    assert not run_dir.exists()


def _out_of_memory_at_update(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """PPO's update number ``count`` fails, as PyTorch out of memory would."""
    updates = []
    update = PPO.train

    def failing(model: PPO) -> None:
        updates.append(model.num_timesteps)
        if len(updates) == count:
            raise RuntimeError("CUDA out of memory")
        update(model)

    monkeypatch.setattr(PPO, "train", failing)


def test_a_failure_inside_sb3_keeps_a_new_run_that_recorded_an_evaluation(
    envapi: EnvApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CONTINUE_WITH_VARIABLE, raising=False)
    _out_of_memory_at_update(monkeypatch, 3)
    config = write_config(
        tmp_path / "small.yaml",
        {**SMALL_CARTPOLE, "eval": {"every_steps": 64, "episodes": 2, "num_envs": 2}},
    )
    run_dir = tmp_path / "run"
    out = io.StringIO()
    with pytest.raises(TrainingError) as caught:
        train(TrainOptions(config, run_dir, url=envapi.url, token=envapi.token), out)
    assert "training failed at step 192: stable-baselines3's PPO or PyTorch raised " in str(
        caught.value
    )
    # Evaluated before any checkpoint (every 256 steps): the run keeps what it recorded.
    assert (
        "no checkpoint was saved (it starts again at step 0): once the cause is fixed, "
        f"continue with: netgym-train train --run-dir {run_dir} --resume"
    ) in str(caught.value)
    assert len(evaluations(run_dir)) == 2 and (run_dir / "best").is_dir()


def test_a_failure_inside_sb3_keeps_the_curves_of_a_new_run_whose_resume_may_fix_its_cause(
    envapi: EnvApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CONTINUE_WITH_VARIABLE, raising=False)
    _out_of_memory_at_update(monkeypatch, 2)
    config = write_config(tmp_path / "small.yaml", SMALL_CARTPOLE)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingError) as caught:
        train(TrainOptions(config, run_dir, url=envapi.url, token=envapi.token), io.StringIO())
    assert "training failed at step 128" in str(caught.value)
    assert (
        f"continue with: netgym-train train --run-dir {run_dir} --resume --set KEY=VALUE"
    ) in str(caught.value)
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert events.Tags()["scalars"]  # the curves of its first steps, kept
    monkeypatch.undo()
    resumed = run_train(
        envapi,
        *("--run-dir", str(run_dir), "--resume"),
        *("--set", "algo.hyperparams.n_epochs=1", "--set", "total_timesteps=256"),
    )
    assert resumed.returncode == 0, resumed.stdout
    assert "has no complete checkpoint: starting at step 0" in resumed.stdout


def test_a_bug_of_netgyms_inside_learn_keeps_its_traceback(
    envapi: EnvApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The progress line's clock broken: a TypeError raised in netgym's own callback,
    # which must not be passed off as a hyperparameter SB3 refuses.
    monkeypatch.setattr(callbacks, "time", SimpleNamespace(monotonic=lambda: None))
    config = write_config(tmp_path / "small.yaml", SMALL_CARTPOLE)
    with pytest.raises(TypeError, match="unsupported operand"):
        train(TrainOptions(config, tmp_path / "run", url=envapi.url, token=envapi.token))


def test_a_full_disk_says_where_training_stopped_and_how_to_go_on(
    envapi: EnvApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CONTINUE_WITH_VARIABLE, raising=False)
    save = CheckpointStore.save

    def second_save_fails(store: CheckpointStore, step: int, *args: Any) -> Path:
        if store.steps():
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(store, step, *args)

    monkeypatch.setattr(CheckpointStore, "save", second_save_fails)
    config = write_config(tmp_path / "small.yaml", SMALL_CARTPOLE)
    run_dir = tmp_path / "run"
    out = io.StringIO()
    with pytest.raises(OSError, match="No space left on device"):
        train(TrainOptions(config, run_dir, url=envapi.url, token=envapi.token), out)
    assert (
        "training stopped at step 512; the last checkpoint is at step 256: once the cause is "
        f"fixed, continue with: netgym-train train --run-dir {run_dir} --resume"
    ) in out.getvalue()
    assert [c.name for c in checkpoint_dirs(run_dir)] == ["step_000000256"]


class _PipeClosedAfterTheBanner(io.StringIO):
    """Output whose reader goes away once it has the banner (`| head -3`)."""

    def write(self, text: str) -> int:
        if "netgym-train: training on" in self.getvalue() and text.strip("=\n"):
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def test_output_gone_before_the_first_checkpoint_leaves_no_folder(tmp_path: Path) -> None:
    """Nothing was saved, so the same command must work again, as after any
    failure before the first checkpoint."""
    config = write_config(tmp_path / "small.yaml", SMALL_CARTPOLE)
    run_dir = tmp_path / "run"
    out = _PipeClosedAfterTheBanner()
    with pytest.raises(BrokenPipeError):
        train(TrainOptions(config, run_dir, url="http://127.0.0.1:9"), out)
    assert "run folder" not in out.getvalue()  # the line whose write failed
    assert not run_dir.exists()


def test_a_run_folder_refused_for_holding_a_run_keeps_it(tmp_path: Path) -> None:
    """One before its first checkpoint, say: --resume must still find its config."""
    config = write_config(tmp_path / "small.yaml", SMALL_CARTPOLE)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copyfile(config, run_dir / "config.yaml")
    with pytest.raises(RunDirError, match="already holds a run"):
        train(TrainOptions(config, run_dir, url="http://127.0.0.1:9"), io.StringIO())
    assert (run_dir / "config.yaml").read_text() == config.read_text()


@pytest.mark.parametrize("other", ["locked", "saved its config"])
def test_a_new_run_folder_that_another_process_takes_first_is_left_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, other: str
) -> None:
    """Two trainings given one new --run-dir: the other one made its run there
    between this one making the folder and starting its run in it."""
    config = write_config(tmp_path / "small.yaml", SMALL_CARTPOLE)
    run_dir = tmp_path / "run"
    make_folder = RunDir.make_folder
    opened: list[io.BufferedWriter] = []

    def the_other_process_comes_in(self: RunDir) -> bool:
        made = make_folder(self)
        held = (run_dir / ".lock").open("wb")  # a file description of its own, as a process has
        fcntl.flock(held, fcntl.LOCK_EX)
        opened.append(held)
        if other == "saved its config":
            shutil.copyfile(config, run_dir / "config.yaml")
        return made

    monkeypatch.setattr(RunDir, "make_folder", the_other_process_comes_in)
    try:
        message = "already holds a run" if other == "saved its config" else "another process"
        with pytest.raises(RunDirError, match=message):
            train(TrainOptions(config, run_dir, url="http://127.0.0.1:9"), io.StringIO())
        assert (run_dir / ".lock").exists()
        if other == "saved its config":
            assert (run_dir / "config.yaml").read_text() == config.read_text()
    finally:
        for held in opened:
            held.close()


def test_a_run_let_go_of_is_no_longer_held(tmp_path: Path) -> None:
    """A run folder removed in this process (a new run that saved nothing) must not
    count as claimed by it when a later run is made at the same path."""
    run = RunDir(tmp_path)
    run.lock()
    assert run.holds_lock() and run.is_locked()
    run.unlock()
    assert not run.holds_lock() and not run.is_locked()


@pytest.mark.parametrize("failing", ["config", "lock"])
def test_a_new_run_folder_that_cannot_be_written_is_not_left_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    def disk_full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    if failing == "config":
        monkeypatch.setattr("netgym_agent.rundir.RunDir.save_config", disk_full)
    else:
        real_open = os.open

        def open_but_the_lock(path: str | Path, *args: int, **kwargs: int | None) -> int:
            if Path(path).name == ".lock":
                disk_full()
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", open_but_the_lock)
    config = write_config(tmp_path / "small.yaml", SMALL_CARTPOLE)
    run_dir = tmp_path / "run"
    with pytest.raises(RunDirError, match="cannot write the run folder"):
        train(TrainOptions(config, run_dir, url="http://127.0.0.1:9"), io.StringIO())
    assert not run_dir.exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_saves_a_checkpoint_and_closes_sessions(
    envapi: EnvApi, tmp_path: Path, signum: signal.Signals
) -> None:
    config = write_config(
        tmp_path / "long.yaml",
        {**SMALL_CARTPOLE, "total_timesteps": 10_000_000, "checkpoint": {"every_steps": 0}},
    )
    run_dir = tmp_path / "run"
    log = tmp_path / "train.log"
    before = envapi.live_sessions()
    trainer = start_train(envapi, log, str(config), "--run-dir", str(run_dir))
    try:
        deadline = time.monotonic() + 60
        while not re.search(r"^step [\d,]+/", log.read_text(), re.M):
            assert trainer.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        trainer.send_signal(signum)
        status = trainer.wait(60)
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()
    output = log.read_text()
    assert status == 128 + signum, output
    stopped = re.search(rf"stopped by {signum.name} at step ([\d,]+)", output)
    assert stopped, output
    assert f"continue with: netgym-train train --run-dir {run_dir} --resume" in output
    step = int(stopped.group(1).replace(",", ""))
    [checkpoint] = checkpoint_dirs(run_dir)
    assert read_directory(checkpoint).step == step > 0
    assert PPO.load(checkpoint / "model.zip", device="cpu").num_timesteps == step
    assert not (run_dir / "final").exists()
    assert "Traceback" not in output
    wait_until_gone(envapi, before)


def test_a_stopped_run_says_to_go_on_as_its_place_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NETGYM_CONTINUE_WITH", raising=False)
    assert continue_with(tmp_path) == f"netgym-train train --run-dir {tmp_path} --resume"
    monkeypatch.setenv("NETGYM_CONTINUE_WITH", "docker compose start")
    assert continue_with(tmp_path) == "docker compose start"


@pytest.mark.parametrize("how", ["closed-pipe", "SIGHUP"])
def test_output_gone_or_a_hangup_stops_with_a_checkpoint(
    envapi: EnvApi, tmp_path: Path, how: str
) -> None:
    """`netgym-train ... | head`, or the ssh session closed: what was learned is kept."""
    config = write_config(
        tmp_path / "long.yaml",
        {**SMALL_CARTPOLE, "total_timesteps": 10**6, "checkpoint": {"every_steps": 0}},
    )  # the only checkpoint is the stop's
    run_dir = tmp_path / "run"
    errors = tmp_path / "stderr.log"
    with errors.open("wb") as stderr:
        trainer = subprocess.Popen(
            train_command(envapi, str(config), "--run-dir", str(run_dir)),
            cwd=ROOT,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    try:
        assert trainer.stdout is not None
        while b"steps/s" not in trainer.stdout.readline():  # a progress line: training
            assert trainer.poll() is None, errors.read_text()
        if how == "closed-pipe":
            trainer.stdout.close()
        else:
            trainer.send_signal(signal.SIGHUP)
        status = trainer.wait(60)
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()
    assert status == (141 if how == "closed-pipe" else 129), errors.read_text()
    assert checkpoint_dirs(run_dir), errors.read_text()
    assert "Traceback" not in errors.read_text()


def test_a_resume_drops_the_episodes_logged_past_its_checkpoint(
    envapi: EnvApi, tmp_path: Path
) -> None:
    """As if killed after step 512: its Monitor rows past 512 would count twice."""
    config = write_config(tmp_path / "small.yaml", SMALL_CARTPOLE)
    run_dir = tmp_path / "run"
    assert run_train(envapi, str(config), "--run-dir", str(run_dir)).returncode == 0
    _stop_at_512(run_dir)
    mark = read_directory(run_dir / "checkpoints" / "step_000000512").info
    first = run_dir / "monitor" / "step_000000000.monitor.csv"
    assert mark["monitor_file"] == first.name and first.stat().st_size > mark["monitor_bytes"]
    discarded = run_dir / "monitor" / "step_000000768.monitor.csv"  # a later, lost segment
    discarded.write_text(first.read_text())
    resumed = run_train(envapi, "--run-dir", str(run_dir), "--resume")
    assert resumed.returncode == 0, resumed.stdout
    assert first.stat().st_size == mark["monitor_bytes"]
    assert not discarded.exists()
    assert (run_dir / "monitor" / "step_000000512.monitor.csv").exists()
