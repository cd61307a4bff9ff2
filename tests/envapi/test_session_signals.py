"""SIGTERM in a session process never cuts a frame in two."""

from __future__ import annotations

import signal

import pytest

from netgym_envapi.sessions.process import _FrameGuard, _raise_terminated, _Terminated


def test_sigterm_during_a_frame_takes_effect_once_the_frame_is_out() -> None:
    sent: list[str] = []
    with pytest.raises(_Terminated), _FrameGuard.whole():
        sent.append("header")
        _raise_terminated(signal.SIGTERM, None)  # as the handler runs mid-send
        sent.append("the rest of the body")
    assert sent == ["header", "the rest of the body"]
    assert not _FrameGuard.pending


def test_sigterm_outside_a_frame_takes_effect_at_once() -> None:
    with pytest.raises(_Terminated):
        _raise_terminated(signal.SIGTERM, None)
