"""One virtual X display (Xvfb through pyvirtualdisplay) shared by every instance."""

from __future__ import annotations

from typing import Any

from pyvirtualdisplay.xvfb import XvfbDisplay


class OwnedXvfb(XvfbDisplay):
    """Xvfb that dies with the process that started it, even one killed by SIGKILL.

    ``setpriv --pdeathsig KILL`` asks Linux to kill Xvfb when its parent exits;
    pyvirtualdisplay offers no hook of its own for that.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(size=(640, 480), color_depth=24, **kwargs)  # type: ignore[no-untyped-call]

    def _cmd(self) -> list[str]:
        command: list[str] = super()._cmd()  # type: ignore[no-untyped-call]
        return ["setpriv", "--pdeathsig", "KILL", "--", *command]

    @property
    def display_name(self) -> str:
        return f":{self.display}"
