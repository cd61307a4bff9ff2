"""FCEUX's output, a file per instance: a game script's ``print()`` passed on to the
service's log, and the file kept small, so that a script that prints every step
cannot fill the disk."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

LOG_FILE = "fceux.log"  # in the instance's home folder
LOG_LIMIT_BYTES = 8 * 2**20  # kept per instance, at most (the file is emptied past it)
LOG_TAIL_BYTES = 64 * 2**10  # what is read of it for an error's message
# How the bridge marks each line of a game script's print(), among FCEUX's own lines,
# and each line of the script's errors (passed on even past the prints' limit).
PRINT_MARK = "netgym-print: "
ERROR_MARK = "netgym-error: "
MARKS = (PRINT_MARK, ERROR_MARK)
PRINTS_PER_PASS = 20  # lines passed on per instance at each pass (every second)
ERROR_LINES_PER_PASS = 200  # of errors (a traceback, say): a script may write the mark too
READ_PER_PASS = 256 * 2**10  # the most read at each pass; output past it is skipped
PRINT_CHARS = 1000  # of a line passed on, at most

log = logging.getLogger("netgym.emulator.game")


class FceuxOutput:
    """The output file of one FCEUX, which FCEUX appends to (stdout and stderr)."""

    def __init__(self, path: Path, source: str) -> None:
        """``source`` names the instance in the service's log (its game and id)."""
        self.path = path
        self.source = source
        self._passed = 0  # how far the file has been read for prints

    def tail(self, lines: int = 20) -> str:
        """The last lines FCEUX wrote, for an error's message."""
        try:
            with self.path.open("rb") as file:
                file.seek(max(0, file.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
                text = file.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def pass_on(self) -> None:
        """Log the game script's lines printed since the last pass (the last
        ``PRINTS_PER_PASS`` of them, after how many more there were), and empty the file past
        ``LOG_LIMIT_BYTES``."""
        with contextlib.suppress(OSError):  # the instance's folder is gone: nothing to pass
            self._log_prints()
            self._trim()

    def _log_prints(self) -> None:
        size = self.path.stat().st_size
        if size < self._passed:  # emptied since the last pass
            self._passed = 0
        if size == self._passed:  # nothing new: most passes
            return
        skipped = max(0, size - self._passed - READ_PER_PASS)
        with self.path.open("rb") as file:
            file.seek(self._passed + skipped)
            data = file.read(size - self._passed - skipped)
        # A line FCEUX is still writing is read at the next pass.
        complete = data[: data.rfind(b"\n") + 1]
        self._passed += skipped + len(complete)
        marked: list[tuple[str, bytes]] = []  # (mark, text) of the script's lines
        for line in complete.splitlines():
            # Where a line starts, or after what io.write() left without a line end.
            found = [(at, mark) for mark in MARKS if (at := line.find(mark.encode())) >= 0]
            if found:  # else FCEUX's own
                at, mark = min(found)
                marked.append((mark, line[at + len(mark) :]))
        prints = [i for i, (mark, _) in enumerate(marked) if mark == PRINT_MARK]
        errors = [i for i, (mark, _) in enumerate(marked) if mark == ERROR_MARK]
        # The prints just before the first error, else the last ones (before a
        # crash, say), and the error's first lines, where it starts.
        before = [i for i in prints if not errors or i < errors[0]]
        shown = set(before[-PRINTS_PER_PASS:]) | set(errors[:ERROR_LINES_PER_PASS])
        left_out = len(marked) - len(shown)
        if left_out or skipped:
            log.info(
                "%s: more printed than shown (%d lines, %d bytes skipped; those shown are "
                "the last before an error, or of this second); %s has it all while the "
                "instance runs",
                self.source,
                left_out,
                skipped,
                self.path,
            )
        for i in sorted(shown):
            mark, raw = marked[i]
            text = raw.decode(errors="replace")
            if len(text) > PRINT_CHARS:
                text = f"{text[:PRINT_CHARS]}... ({len(text) - PRINT_CHARS:,} more characters)"
            if mark == ERROR_MARK:
                log.warning("%s: error: %s", self.source, text)
            else:
                log.info("%s: %s", self.source, text)

    def _trim(self) -> None:
        if self.path.stat().st_size <= LOG_LIMIT_BYTES:
            return
        # FCEUX appends (O_APPEND): it writes on at the new end. Nothing of the old
        # output is put back: FCEUX's next lines could come before it.
        os.truncate(self.path, 0)
        self._passed = 0
        note = f"[netgym: earlier output dropped past {LOG_LIMIT_BYTES:,} bytes]\n"
        with self.path.open("ab") as file:
            file.write(note.encode())
