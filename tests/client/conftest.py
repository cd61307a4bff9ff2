"""Fixtures of the client tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from netgym.protocol.frames import FrameReader


@pytest.fixture
def ctrl_c_at_next_reply(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Arm a KeyboardInterrupt for the next reply the client reads, as if Ctrl-C came
    while that reply was on its way; replies after it are read as usual."""

    def arm() -> None:
        real_header = FrameReader.header

        def interrupted(self: FrameReader) -> Any:
            monkeypatch.setattr(FrameReader, "header", real_header)
            raise KeyboardInterrupt

        monkeypatch.setattr(FrameReader, "header", interrupted)

    return arm
