"""Server-side wrappers as a request names them: every mistake is refused, saying why."""

from __future__ import annotations

from typing import Any

import pytest

from netgym.errors import InvalidRequestError
from netgym_envapi.wrappers import WrapperSpec, parse_wrappers


def test_names_and_dicts_are_read_in_order() -> None:
    raw = ["atari", {"name": "frame_stack", "kwargs": {"stack_size": 8}}, {"name": "clip_reward"}]
    assert parse_wrappers(raw) == [
        WrapperSpec("atari"),
        WrapperSpec("frame_stack", {"stack_size": 8}),
        WrapperSpec("clip_reward"),
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "frame_stack", "kwarg": {"stack_size": 8}}, r"unknown key\(s\) \['kwarg'\]"),
        ({"name": "frame_stack", "stack_size": 8}, r"unknown key\(s\) \['stack_size'\]"),
        ({"name": "frame_stack", "kwargs": {"size": 8}}, r"takes no \['size'\]; it takes"),
        ({"name": "time_limit"}, r"'time_limit' needs kwargs \['max_episode_steps'\], e\.g\."),
        ("framestack", r"unknown wrapper 'framestack'; known: atari"),
        ({"kwargs": {}}, r"a wrapper is a name or"),
    ],
    ids=["misspelled-kwargs", "kwargs-at-top", "unknown-kwarg", "missing-kwarg", "name", "no-name"],
)
def test_a_mistake_is_refused_with_what_to_write(raw: Any, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        parse_wrappers([raw])


def test_the_atari_wrapper_after_a_frame_stack_is_refused_saying_the_order() -> None:
    # Else the env fails at its first reset: "Invalid shape (4, 210), expecting ...".
    with pytest.raises(InvalidRequestError, match=r"put it first: \['atari', 'frame_stack'\]"):
        parse_wrappers(["frame_stack", "atari"])
    with pytest.raises(InvalidRequestError, match=r"put it first"):
        parse_wrappers(["atari", "frame_stack", "atari"])
