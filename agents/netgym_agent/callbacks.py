"""SB3 callbacks: the progress line, periodic checkpoints and evaluations, stop on signal.

Checkpoints and evaluations run when a rollout starts: by then, for PPO and
A2C, every step counted has been trained on, and for DQN the gradient steps
of the last ``train_freq`` are done, so a checkpoint's step count and weights
agree.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from netgym_agent.signals import StopRequested


class Every:
    """Due each time the step count crosses a multiple of ``steps`` (0: never)."""

    def __init__(self, steps: int, start: int) -> None:
        self.steps = steps
        self.last = start

    def due(self, step: int) -> bool:
        """Whether a multiple of ``steps`` lies in (last, step]."""
        return self.steps > 0 and step // self.steps > self.last // self.steps

    def mark(self, step: int) -> None:
        """The task ran at ``step``."""
        self.last = step


class StopOnRequest(BaseCallback):
    """Ends ``learn`` at the next env step after SIGINT/SIGTERM or a finished goal."""

    def __init__(self, stop: StopRequested, goal_reached: Callable[[], bool]) -> None:
        super().__init__()
        self.stop = stop
        self.goal_reached = goal_reached

    def _on_step(self) -> bool:
        return not (self.stop or self.goal_reached())


class PeriodicTasks(BaseCallback):
    """Checkpoint and evaluate every N steps, at rollout boundaries.

    Args:
        checkpoint_every: steps between checkpoints (0: none but the last).
        evaluate_every: steps between evaluations (0: none).
        start: the step the run starts (or resumes) at.
        evaluated_at: the step of the run's last evaluation (``start`` if none), so a
            resume evaluates at once when it stopped after a multiple of
            ``evaluate_every`` and before that evaluation ran.
        checkpoint: writes a checkpoint of the model as it is now.
        evaluate: evaluates the model as it is now.
        stopping: whether a stop was requested (during an evaluation, say): the
            checkpoint is left to the stop's own, a step later.
    """

    def __init__(
        self,
        *,
        checkpoint_every: int,
        evaluate_every: int,
        start: int,
        evaluated_at: int | None = None,
        checkpoint: Callable[[], object],
        evaluate: Callable[[], object],
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__()
        self.checkpoints = Every(checkpoint_every, start)
        self.evaluations = Every(evaluate_every, start if evaluated_at is None else evaluated_at)
        self.checkpoint = checkpoint
        self.evaluate = evaluate
        self.stopping = stopping

    def _on_rollout_start(self) -> None:
        step = self.num_timesteps
        if self.evaluations.due(step):
            self.evaluations.mark(step)
            self.evaluate()
        if self.checkpoints.due(step) and not self.stopping():
            self.checkpoints.mark(step)
            self.checkpoint()

    def _on_step(self) -> bool:
        return True


class ProgressLine(BaseCallback):
    """One line every few seconds: steps, speed, episodes, mean return of the last 100.

    Args:
        total: the run's ``total_timesteps``.
        every_s: seconds between lines.
        episodes: episodes finished before this segment (on resume).
        best: a short text about the best evaluation so far, or "".
        reconnects: how many times the training envs reconnected so far.
        out: where to print.
    """

    def __init__(
        self,
        total: int,
        every_s: float,
        *,
        episodes: int = 0,
        best: Callable[[], str] = lambda: "",
        reconnects: Callable[[], int] = lambda: 0,
        out: TextIO = sys.stdout,
    ) -> None:
        super().__init__()
        self.total = total
        self.every_s = every_s
        self.episodes = episodes
        self.best = best
        self.reconnects = reconnects
        self.out = out
        self._last_time = 0.0
        self._last_step = 0
        self._left_out = 0.0  # seconds since the last line that were no training
        self._printed = False

    def _on_training_start(self) -> None:
        self._last_time = time.monotonic()
        self._last_step = self.num_timesteps

    def leave_out(self, seconds: float) -> None:
        """Time that was no training (an evaluation, a checkpoint): the next line's
        speed does not count it, or that line would show a fraction of the speed."""
        self._left_out += seconds

    def _on_step(self) -> bool:
        infos = self.locals.get("infos") or []
        self.episodes += sum(1 for info in infos if "episode" in info)
        now = time.monotonic()
        if now - self._last_time >= self.every_s:
            self.print_line(now)
        return True

    def print_last_line(self) -> None:
        """The line at the end of training, unless the last one printed has its step
        (it would add only a speed of 0 steps/s)."""
        if not self._printed or self.num_timesteps != self._last_step:
            self.print_line()

    def print_line(self, now: float | None = None) -> None:
        """Print the line now."""
        self._printed = True
        now = time.monotonic() if now is None else now
        step = self.num_timesteps
        training_s = now - self._last_time - self._left_out
        speed = (step - self._last_step) / max(training_s, 1e-9)
        self._last_time, self._last_step, self._left_out = now, step, 0.0
        buffer = self.model.ep_info_buffer
        recent = [float(info["r"]) for info in buffer] if buffer else []
        mean = f"{np.mean(recent):.2f} (last {len(recent)})" if recent else "n/a"
        parts = [
            f"step {step:,}/{self.total:,} ({min(100, 100 * step // self.total)}%)",
            f"{speed:,.0f} steps/s",
            f"{self.episodes:,} episodes",
            f"return {mean}",
        ]
        if reconnects := self.reconnects():
            parts.append(f"{reconnects} reconnect{'s' if reconnects > 1 else ''}")
        if best := self.best():
            parts.append(best)
        print(" | ".join(parts), file=self.out, flush=True)
