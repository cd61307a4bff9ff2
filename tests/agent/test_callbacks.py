"""When the trainer's periodic tasks run, across a resume."""

from __future__ import annotations

import io
from types import SimpleNamespace

from netgym_agent.callbacks import PeriodicTasks, ProgressLine


def evaluations_at(steps: list[int], *, start: int, evaluated_at: int | None) -> list[int]:
    ran: list[int] = []
    tasks = PeriodicTasks(
        checkpoint_every=0,
        evaluate_every=10_000,
        start=start,
        evaluated_at=evaluated_at,
        checkpoint=lambda: None,
        evaluate=lambda: ran.append(tasks.num_timesteps),
    )
    for step in steps:
        tasks.num_timesteps = step
        tasks._on_rollout_start()
    return ran


def test_a_resume_runs_the_evaluation_that_a_stop_came_before() -> None:
    # Stopped at 20,100, past 20,000 but before its evaluation: the last one was at 10,000.
    assert evaluations_at([20_100, 22_000, 30_050], start=20_100, evaluated_at=10_000) == [
        20_100,
        30_050,
    ]


def test_a_fresh_run_and_an_evaluated_resume_wait_for_the_next_multiple() -> None:
    assert evaluations_at([0, 9_000, 10_100], start=0, evaluated_at=None) == [10_100]
    assert evaluations_at([20_000, 25_000], start=20_000, evaluated_at=20_000) == []


def test_a_stop_during_an_evaluation_leaves_the_checkpoint_to_the_stop() -> None:
    checkpoints: list[int] = []
    stop = [False]

    def evaluate() -> None:
        stop[0] = True  # SIGINT while it plays

    tasks = PeriodicTasks(
        checkpoint_every=1_000,
        evaluate_every=1_000,
        start=0,
        checkpoint=lambda: checkpoints.append(tasks.num_timesteps),
        evaluate=evaluate,
        stopping=lambda: stop[0],
    )
    tasks.num_timesteps = 1_000
    tasks._on_rollout_start()
    assert checkpoints == []  # the stop writes its own, one step later: not two


def test_the_progress_speed_leaves_out_the_time_an_evaluation_took() -> None:
    out = io.StringIO()
    line = ProgressLine(10_000, 5.0, out=out)
    line.model = SimpleNamespace(ep_info_buffer=[])  # type: ignore[assignment]
    line.num_timesteps = 1_000
    line.restart_clock(now=100.0)
    line.num_timesteps = 2_000  # 1,000 steps in 1 s, then an evaluation of 30 s
    line.restart_clock(now=131.0)
    line.num_timesteps = 2_500
    line.print_line(now=132.0)
    assert "500 steps/s" in out.getvalue()
