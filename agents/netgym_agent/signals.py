"""SIGINT and SIGTERM as a polite request: finish the step, checkpoint, close, exit.

The handler only records the signal; the training loop polls it between env
steps, so a checkpoint being written is never cut short. A second signal
exits at once, with the sessions closed by the ``finally`` blocks on the way
out (but no new checkpoint).
"""

from __future__ import annotations

import signal
import sys
from types import FrameType, TracebackType
from typing import Any

WATCHED = (signal.SIGINT, signal.SIGTERM)


class StopRequested:
    """Installs the handlers for its ``with`` block and says whether to stop."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __bool__(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        """The signal's name, e.g. ``SIGTERM``."""
        return signal.Signals(self.signum).name if self.signum else "no signal"

    @property
    def exit_status(self) -> int:
        """The shell's convention for a process ended by the signal: 128 + its number."""
        return 128 + (self.signum or 0)

    def __enter__(self) -> StopRequested:
        for signum in WATCHED:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is not None:
            print(
                f"\n{signal.Signals(signum).name} again: exiting without a new checkpoint",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(128 + signum)
        self.signum = signum
        print(
            f"\n{signal.Signals(signum).name}: finishing the current step, saving a checkpoint "
            "and closing the sessions (send it again to exit at once)",
            file=sys.stderr,
            flush=True,
        )
