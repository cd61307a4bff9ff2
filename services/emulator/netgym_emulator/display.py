"""The virtual X display (Xvfb through pyvirtualdisplay) that every instance draws on."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from typing import Any

from pyvirtualdisplay.xvfb import XvfbDisplay

log = logging.getLogger("netgym.emulator.display")
XVFB_STOP_TIMEOUT_S = 2.0  # after SIGTERM, before pyvirtualdisplay's SIGKILL


class OwnedXvfb(XvfbDisplay):
    """Xvfb that dies with the process that started it, even one killed by SIGKILL.

    ``setpriv --pdeathsig KILL`` asks Linux to kill Xvfb when its parent exits;
    pyvirtualdisplay offers no hook of its own for that. ``-noreset``: Xvfb
    need not reset (and print to a pipe nobody reads) each time its last
    instance leaves.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            size=(640, 480), color_depth=24, extra_args=["-noreset"], **kwargs
        )

    def _cmd(self) -> list[str]:
        command: list[str] = super()._cmd()  # type: ignore[no-untyped-call]
        return ["setpriv", "--pdeathsig", "KILL", "--", *command]

    def stop(self) -> OwnedXvfb:
        """Stop Xvfb with SIGTERM first, so that it removes its socket and lock file
        (``/tmp/.X11-unix/X<n>``, ``/tmp/.X<n>-lock``): pyvirtualdisplay's SIGKILL
        leaves them behind."""
        if self.is_alive():  # type: ignore[no-untyped-call]
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + XVFB_STOP_TIMEOUT_S
            while self.is_alive() and time.monotonic() < deadline:  # type: ignore[no-untyped-call]
                time.sleep(0.01)
        super().stop()  # type: ignore[no-untyped-call]
        return self

    @property
    def display_name(self) -> str:
        return f":{self.display}"


class VirtualDisplay:
    """The service's Xvfb, started again when it has died (instances on it died with it)."""

    def __init__(self) -> None:
        self._xvfb: OwnedXvfb | None = None
        self.restarts = 0

    def start(self) -> None:
        self._xvfb = OwnedXvfb()
        self._xvfb.start()  # type: ignore[no-untyped-call]

    def stop(self) -> None:
        if self._xvfb is not None:
            self._xvfb.stop()
            self._xvfb = None

    def is_alive(self) -> bool:
        return self._xvfb is not None and bool(self._xvfb.is_alive())  # type: ignore[no-untyped-call]

    def live_name(self) -> str:
        """The display's name (``:N``), after starting a new Xvfb if the last one died."""
        if not self.is_alive():
            log.warning("Xvfb is gone; starting a new one (its instances went with it)")
            self.stop()
            self.start()
            self.restarts += 1
        assert self._xvfb is not None
        return self._xvfb.display_name
