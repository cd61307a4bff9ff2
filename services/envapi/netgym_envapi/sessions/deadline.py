"""A step deadline shared between a session process and the main process.

The session process cuts a hang in its own slice of envs short with SIGALRM,
but Python runs signal handlers only between bytecodes: an env stuck inside C
code (a native emulator, a blocking library call) never sees it. So before
each reset or step the session writes the time by which it must be done into
8 bytes of shared memory, and 0 when done; the main process, which no env code
can block, checks the deadline every second and kills a session that is far
past it. ``time.monotonic()`` is CLOCK_MONOTONIC, the same clock in every
process on the machine, so the two sides compare times directly.
"""

from __future__ import annotations

import mmap
import os
import struct

_DEADLINE = struct.Struct("=d")
SIZE = 16  # one float64, padded


class StepDeadline:
    """The shared deadline: seconds on ``time.monotonic()``, 0 when no step runs.

    Args:
        fd: a file descriptor of a memory file of at least ``SIZE`` bytes; the
            mapping keeps its own descriptor, so the caller may close ``fd``.
    """

    def __init__(self, fd: int) -> None:
        self._memory = mmap.mmap(fd, SIZE)

    @classmethod
    def create(cls, name: str) -> tuple[StepDeadline, int]:
        """A new deadline (0) and a descriptor of its memory, to hand to the session.

        The caller closes the descriptor once the session has its copy.
        """
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, SIZE)
            return cls(fd), fd
        except BaseException:
            os.close(fd)
            raise

    def set(self, deadline: float) -> None:
        """Announce that the work under way must end by ``deadline`` (0: none runs)."""
        _DEADLINE.pack_into(self._memory, 0, deadline)

    def clear(self) -> None:
        """No step runs."""
        self.set(0.0)

    def get(self) -> float:
        """The deadline of the work under way, or 0 when none runs."""
        # Nothing promises that the writer stores the 8 bytes at once: read until
        # two reads agree, so that a value caught half-written is never acted on.
        raw = self._memory[: _DEADLINE.size]
        while (again := self._memory[: _DEADLINE.size]) != raw:
            raw = again
        (deadline,) = _DEADLINE.unpack(raw)
        return float(deadline)

    def close(self) -> None:
        """Unmap the memory."""
        self._memory.close()
