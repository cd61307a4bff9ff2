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
    line = ProgressLine(100_000, 5.0, out=out)
    line.model = SimpleNamespace(ep_info_buffer=[])  # type: ignore[assignment]
    line._on_training_start()
    started = line._last_time
    # 1,000 steps in 1 s, an evaluation of 30 s, then 500 steps in 1 s: 750 steps/s.
    line.num_timesteps += 1_500
    line.leave_out(30.0)
    line.print_line(now=started + 32.0)
    assert "750 steps/s" in out.getvalue()


def test_evaluations_more_often_than_lines_leave_the_lines_printed() -> None:
    out = io.StringIO()
    line = ProgressLine(100_000, 5.0, out=out)
    line.model = SimpleNamespace(ep_info_buffer=[])  # type: ignore[assignment]
    line._on_training_start()
    line._last_time -= 6.0  # 6 s ago, with evaluations of 1 s every 3 s meanwhile
    line.leave_out(2.0)
    line._on_step()  # the line is due: its time counts from the last line, not the last eval
    assert "steps/s" in out.getvalue()


def test_the_last_line_is_left_out_when_the_line_before_it_has_its_step() -> None:
    out = io.StringIO()
    line = ProgressLine(100_000, 5.0, out=out)
    line.model = SimpleNamespace(ep_info_buffer=[])  # type: ignore[assignment]
    line._on_training_start()
    line.print_last_line()  # nothing printed yet: the line, whatever its step
    line.num_timesteps += 1_000
    line.print_line()
    line.print_last_line()  # a stop right after a line: it would say 0 steps/s
    assert out.getvalue().count("steps/s") == 2
    line.num_timesteps += 10
    line.print_last_line()
    assert out.getvalue().count("steps/s") == 3
