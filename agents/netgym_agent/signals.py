"""SIGINT, SIGTERM and SIGHUP as a polite request: finish the step, checkpoint,
close, exit.

The handler only records the signal; the training loop polls it between env
steps, so a checkpoint being written is never cut short. A second signal
exits at once, with the sessions closed by the ``finally`` blocks on the way
out (but no new checkpoint). Output that can no longer be written (a closed
pipe, the terminal of a closed ssh session) is a request to stop as well
(``StoppingOutput``): as SIGPIPE, exit status 141.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from types import FrameType, TracebackType
from typing import Any, TextIO

WATCHED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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

    def request(self, signum: int) -> None:
        """Stop as if ``signum`` had come (the first request counts)."""
        if self.signum is None:
            self.signum = signum

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is not None:
            _tell(f"\n{signal.Signals(signum).name} again: exiting without a new checkpoint")
            raise SystemExit(128 + signum)
        self.signum = signum
        _tell(
            f"\n{signal.Signals(signum).name}: finishing the current step, saving a checkpoint "
            "and closing the sessions (send it again to exit at once)"
        )


def _tell(text: str) -> None:
    """Print to stderr, unless it is gone (SIGHUP: the terminal closed)."""
    with contextlib.suppress(OSError):
        print(text, file=sys.stderr, flush=True)


class StoppingOutput:
    """A text stream that, once writing to it fails, drops what follows and asks
    ``stop`` to stop: training would otherwise die mid-step without a checkpoint."""

    def __init__(self, stream: TextIO, stop: StopRequested) -> None:
        self.stream = stream
        self.stop = stop
        self.lost = False

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                return self.stream.write(text)
            except OSError:  # BrokenPipeError, or EIO from a hung-up terminal
                self._lose()
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self.stream.flush()
            except OSError:
                self._lose()

    def _lose(self) -> None:
        self.lost = True
        self.stop.request(signal.SIGPIPE)
