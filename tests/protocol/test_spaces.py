"""Every kind of space survives spec round-trips and batch layouts, exactly."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

from netgym.errors import InvalidActionError, ProtocolError, UnsupportedSpaceError
from netgym.protocol import BatchLayout, pack_space, unpack_space

SPACES = {
    "box-uint8-image": spaces.Box(0, 255, (210, 160, 3), np.uint8),
    "box-float32-unbounded": spaces.Box(-np.inf, np.inf, (4,), np.float32),
    "box-float64-mixed-bounds": spaces.Box(
        np.array([-1.0, -np.inf, 0.5]), np.array([1.0, 2.0, np.inf]), dtype=np.float64
    ),
    "box-int16-scalar": spaces.Box(-3, 7, (), np.int16),
    "discrete": spaces.Discrete(6),
    "discrete-start": spaces.Discrete(3, start=-1),
    "multi-binary": spaces.MultiBinary(5),
    "multi-binary-2d": spaces.MultiBinary([2, 3]),
    "multi-discrete": spaces.MultiDiscrete([3, 5, 2]),
    "multi-discrete-start": spaces.MultiDiscrete([[2, 3], [4, 5]], start=[[1, 1], [0, -2]]),
    "dict": spaces.Dict(
        {"pixels": spaces.Box(0, 255, (8, 8, 3), np.uint8), "ram": spaces.MultiBinary(16)}
    ),
    "dict-unsorted": spaces.Dict(
        [("b", spaces.Box(0, 10, (2,), np.float32)), ("a", spaces.Discrete(5))], sort_keys=False
    ),
    "tuple": spaces.Tuple((spaces.Discrete(2), spaces.Box(-1, 1, (2,), np.float32))),
    "nested": spaces.Dict(
        {"a": spaces.Tuple((spaces.Discrete(4), spaces.Dict({"b": spaces.MultiDiscrete([2, 2])})))}
    ),
}


@pytest.mark.parametrize("space", SPACES.values(), ids=SPACES.keys())
def test_spec_roundtrip_gives_an_equal_space(space: spaces.Space) -> None:
    spec = json.loads(json.dumps(pack_space(space)))  # it must survive real JSON
    rebuilt = unpack_space(spec)
    assert rebuilt == space
    assert type(rebuilt) is type(space)
    assert pack_space(rebuilt) == pack_space(space)


@pytest.mark.parametrize("space", SPACES.values(), ids=SPACES.keys())
def test_batch_roundtrip_through_bytes(space: spaces.Space) -> None:
    num_envs = 3
    batched = batch_space(space, num_envs)
    batched.seed(0)
    value = batched.sample()
    layout = BatchLayout(space, num_envs)
    buffer = bytearray(layout.nbytes)
    layout.pack_into(buffer, value)
    leaves = layout.views(bytes(buffer))
    layout.check(leaves)
    back = layout.assemble(leaves)
    for original, decoded in zip(layout.flatten(value), layout.flatten(back), strict=True):
        np.testing.assert_array_equal(original, decoded)
        assert decoded.dtype == np.asarray(original).dtype
    assert all(leaf.offset % 8 == 0 for leaf in layout.leaves)


def test_unsorted_dict_keeps_its_key_order_across_the_wire() -> None:
    """The peer reads leaves in the sender's key order, not in sorted order."""
    sent = spaces.Dict(
        [("b", spaces.Box(0, 10, (2,), np.float32)), ("a", spaces.Discrete(5))], sort_keys=False
    )
    received = unpack_space(json.loads(json.dumps(pack_space(sent))))
    assert list(received.keys()) == ["b", "a"]
    assert list(batch_space(received, 2).keys()) == ["b", "a"]
    value = {"b": np.array([[1.5, 2.5], [4.5, 5.5]], np.float32), "a": np.array([3, 4])}
    buffer = bytearray(BatchLayout(sent, 2).nbytes)
    BatchLayout(sent, 2).pack_into(buffer, value)
    reader = BatchLayout(received, 2)
    back = reader.assemble(reader.views(bytes(buffer)))
    np.testing.assert_array_equal(back["b"], value["b"])
    np.testing.assert_array_equal(back["a"], value["a"])


def test_out_of_space_action_names_env_and_space() -> None:
    layout = BatchLayout(spaces.Discrete(6), 4)
    buffer = bytearray(layout.nbytes)
    layout.pack_into(buffer, np.array([0, 5, 6, 1]))
    with pytest.raises(InvalidActionError, match=r"env 2 is 6.*Discrete\(6\)"):
        layout.check(layout.views(buffer))


@pytest.mark.parametrize(
    ("actions", "bad_env"), [([-1, 0, 1], None), ([-2, 0, 1], 0), ([-1, 0, 2], 2)]
)
def test_discrete_with_start_is_checked_against_its_range(
    actions: list[int], bad_env: int | None
) -> None:
    layout = BatchLayout(spaces.Discrete(3, start=-1), 3)
    buffer = bytearray(layout.nbytes)
    layout.pack_into(buffer, np.array(actions))
    if bad_env is None:
        layout.check(layout.views(buffer))
        return
    with pytest.raises(InvalidActionError, match=f"env {bad_env} "):
        layout.check(layout.views(buffer))


def test_box_action_nan_is_out_of_space() -> None:
    layout = BatchLayout(spaces.Box(-1, 1, (2,), np.float32), 2)
    buffer = bytearray(layout.nbytes)
    layout.pack_into(buffer, np.array([[0, 0], [np.nan, 0]], dtype=np.float32))
    with pytest.raises(InvalidActionError, match="env 1"):
        layout.check(layout.views(buffer))


def test_wrong_shape_and_dtype_are_caught_before_sending() -> None:
    layout = BatchLayout(spaces.Discrete(6), 4)
    buffer = bytearray(layout.nbytes)
    with pytest.raises(InvalidActionError, match="shape"):
        layout.pack_into(buffer, np.array([1, 2, 3]))
    with pytest.raises(InvalidActionError, match="cannot be cast"):
        layout.pack_into(buffer, np.array([1.5, 2, 3, 4]))


_JUMPS = ([0, 1], [1, 0])


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ({"move": [1, 2]}, r"missing keys \['jump'\]"),
        ({"move": [1, 2], "jump": _JUMPS, "fire": [1, 1]}, r"keys \['fire'\] are not in Dict"),
        ([[1, 2], _JUMPS], "expected a dict"),
        ({"move": [1, 2], "jump": _JUMPS[:1]}, "expected a tuple of 2 items"),
    ],
)
def test_an_action_not_made_as_its_space_is_refused_as_gymnasium_would(
    action: object, message: str
) -> None:
    space = spaces.Dict(
        {"move": spaces.Discrete(4), "jump": spaces.Tuple((spaces.Discrete(2), spaces.Discrete(2)))}
    )
    layout = BatchLayout(space, 2)
    layout.pack_into(bytearray(layout.nbytes), {"move": [1, 2], "jump": _JUMPS})
    with pytest.raises(InvalidActionError, match=message):
        layout.pack_into(bytearray(layout.nbytes), action)


@pytest.mark.parametrize(
    ("space", "actions", "bad_env"),
    [
        (spaces.MultiBinary(3), [[0, 1, 0], [257, 0, 256]], 1),  # int8: 257 would wrap to 1
        (spaces.Box(-5, 5, (2,), np.int8), [[-200, 1], [0, 0]], 0),
        (spaces.Box(0, 255, (1,), np.uint8), [[3], [-1]], 1),  # -1 would wrap to 255
        (spaces.Discrete(5), np.array([1, 2**64 - 1], dtype=np.uint64), 1),
    ],
)
def test_integers_a_narrower_dtype_cannot_hold_are_refused_not_wrapped(
    space: spaces.Space[Any], actions: Any, bad_env: int
) -> None:
    layout = BatchLayout(space, 2, "action")
    buffer = bytearray(layout.nbytes)
    with pytest.raises(InvalidActionError, match=f"action for env {bad_env} is .*not in"):
        layout.pack_into(buffer, actions)


def test_integers_in_range_of_a_narrower_dtype_are_cast() -> None:
    layout = BatchLayout(spaces.Box(0, 255, (2,), np.uint8), 2, "action")
    buffer = bytearray(layout.nbytes)
    layout.pack_into(buffer, [[3, 255], [0, 1]])  # a list of Python ints, as int64
    np.testing.assert_array_equal(layout.views(buffer)[0], [[3, 255], [0, 1]])


def test_unsupported_space_says_what_is_supported() -> None:
    with pytest.raises(UnsupportedSpaceError, match="Box, Discrete"):
        pack_space(spaces.Text(5))


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "cube"},
        {"type": "box", "dtype": "uint8"},
        {"type": "box", "dtype": "uint8", "shape": [2], "low": [0, 1, 2], "high": 1},
    ],
    ids=["unknown-type", "missing-fields", "bound-size"],
)
def test_malformed_spec_is_a_protocol_error(spec: dict) -> None:
    with pytest.raises(ProtocolError):
        unpack_space(spec)
