"""Info dicts and reset options survive the value codec exactly."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

from netgym.errors import ProtocolError
from netgym.protocol import pack_value, unpack_value
from netgym.protocol.values import json_value, value_from_json

final_obs = np.full(3, None, dtype=object)
final_obs[1] = np.arange(4, dtype=np.float32)

VALUES = {
    "empty-dict": {},
    "scalars": {"a": 1, "b": 2.5, "c": True, "d": None, "e": "text", "big": 2**70},
    "non-finite": {"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf")},
    "arrays": {
        "u8": np.arange(6, dtype=np.uint8).reshape(2, 3),
        "f32": np.ones(3, np.float32),
        "bool": np.array([True, False]),
        "i64-0d": np.array(5),
    },
    "numpy-scalars": {"f": np.float32(1.5), "i": np.int64(-3), "b": np.bool_(True)},
    "vector-info": {
        "lives": np.array([3, 3, 2], np.int32),
        "_lives": np.array([True] * 3),
        "final_obs": final_obs,
        "_final_obs": np.array([False, True, False]),
    },
    "nested": {"episode": {"r": np.array([1.0, 0.0]), "l": np.array([10, 0])}},
    "containers": {"t": (1, "x", (2.0,)), "l": [1, [2, 3]], "bytes": b"\x00\xff"},
    "odd-keys": {"$nd": 1, 3: "int key", ("a", 1): "tuple key"},
    "empty-arrays": {
        "legal_moves": np.zeros(0, np.int64),
        "no-columns": np.zeros((3, 0), np.float32),
        "after": np.arange(3, dtype=np.uint8),
        "empty-bytes": b"",
    },
}


@pytest.mark.parametrize("value", VALUES.values(), ids=VALUES.keys())
def test_roundtrip(value: object) -> None:
    back = unpack_value(pack_value(value))
    if value == VALUES["non-finite"]:
        assert np.isnan(back["nan"]) and back["inf"] == float("inf")
        return
    assert data_equivalence(back, value, exact=True)


@pytest.mark.parametrize("number", [np.float64("nan"), np.float64("inf"), np.float64("-inf")])
def test_numpy_float64_non_finite_travels_as_its_name(number: np.float64) -> None:
    """np.float64 subclasses float, and its repr is "np.float64(nan)": not on the wire."""
    encoded = pack_value({"x": number, "in-list": [number, 1.0]})
    assert b"np.float64" not in encoded
    back = unpack_value(encoded)
    np.testing.assert_equal([back["x"], *back["in-list"]], [number, number, 1.0])


def test_non_finite_tag_only_takes_the_three_names() -> None:
    text = b'{"$float":"np.float64(nan)"}'
    with pytest.raises(ProtocolError, match="nan"):
        unpack_value(struct.pack("<I", len(text)) + text)


def test_arrays_travel_as_raw_bytes_not_json() -> None:
    frame = np.zeros((84, 84), np.uint8)
    encoded = pack_value({"frame": frame})
    assert len(encoded) < frame.nbytes + 100


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x05\x00\x00\x00{",
        struct.pack("<I", 100) + b"{}",
        struct.pack("<I", 2) + b"\xff\xfe",
        struct.pack("<I", 28) + b'{"$nd":[0,"<f8",[1000]]}    ',
        struct.pack("<I", 60000) + b"[" * 30000 + b"]" * 30000,
        struct.pack("<I", 5000) + b"9" * 5000,
    ],
    ids=[
        "empty",
        "truncated-json",
        "length-past-end",
        "not-utf8",
        "array-past-blob",
        "deep-nesting",
        "huge-int",
    ],
)
def test_malformed_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        unpack_value(data)


def _with_blob(tree: dict[str, Any]) -> bytes:
    text = json.dumps(tree).encode()
    return struct.pack("<I", len(text)) + text + bytes(-(4 + len(text)) % 8) + bytes(64)


@pytest.mark.parametrize("shape", [[1e999], [-2, -3], [10**30], [1.5], [True]], ids=str)
def test_a_malformed_array_shape_is_a_protocol_error_every_time(shape: list[Any]) -> None:
    # Twice: a dict of arrays is decoded through a cached plan the second time.
    data = _with_blob({"info": {"$nd": [0, "<f4", shape]}})
    for _ in range(2):
        with pytest.raises(ProtocolError):
            unpack_value(data)


def test_unknown_type_is_refused() -> None:
    with pytest.raises(ProtocolError, match="cannot send"):
        pack_value({"x": object()})


def deeply_nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value", [{"x": 10**5000}, deeply_nested(100_000)], ids=["huge-int", "deep-nesting"]
)
def test_what_json_cannot_hold_is_a_protocol_error(value: object) -> None:
    with pytest.raises(ProtocolError, match="cannot send"):
        pack_value(value)


def _vector_info(step: int) -> dict[str, np.ndarray]:
    return {
        "score": np.array([step, step + 1], dtype=np.int64),
        "_score": np.array([True, False]),
        "lives": np.array([3.5, np.inf]),
        "_lives": np.array([True, True]),
    }


def test_a_repeated_vector_info_decodes_the_same_every_time() -> None:
    """A vector info packed again (same keys, dtypes, shapes) reuses its JSON: same values."""
    first = pack_value(_vector_info(0))
    for step in range(3):
        data = pack_value(_vector_info(step))
        assert len(data) == len(first)
        decoded = unpack_value(data)
        assert data_equivalence(decoded, _vector_info(step))
        decoded["score"][0] = -1  # arrays are copies, never views of the message
        assert unpack_value(data)["score"][0] == step


def test_a_cached_layout_is_not_applied_to_a_different_value() -> None:
    pack_value(_vector_info(0))
    other = {"score": np.array([1, 2], dtype=np.int32), "_score": np.array([True, True])}
    assert data_equivalence(unpack_value(pack_value(other)), other)
    nested = {"score": np.arange(2), "extra": {"deep": np.ones(2)}}
    assert data_equivalence(unpack_value(pack_value(nested)), nested)


def test_a_truncated_repeat_of_a_known_layout_is_a_protocol_error() -> None:
    data = pack_value(_vector_info(0))
    unpack_value(data)
    with pytest.raises(ProtocolError):
        unpack_value(data[:-8])


def _bools_with_a_two(key: str) -> bytes:
    data = bytearray(pack_value({key: np.array([True, False, True]), "n": np.arange(3)}))
    data[data.index(b"\x01\x00\x01")] = 2
    return bytes(data)


@pytest.mark.parametrize(
    "data",
    [
        _with_blob({"$nb": [0, "<f4", [2]]}),
        _with_blob({"info": {"$nd": [0, "<f4", [2]], "$extra": 1}}),
        _with_blob({"a": {"$nd": [4, "<f4", [2]]}}),
        _with_blob({"a": {"$np": [4, "<f4"]}}),
        _with_blob({"a": {"$nd": [False, "<f4", [2]]}}),
        _with_blob({"a": {"$bytes": [0, True]}}),
        _bools_with_a_two("_mask"),
        _with_blob({"seed": {"$np": [0, "M8"]}}),
        _with_blob({"$dict": [[{"$np": [0, "M8"]}, 1]]}),
        _with_blob({"a": {"$nd": [0, "<U1", [2]]}}),
        _with_blob({"a": {"$nd": [0, "(2,)<i4", [1]]}}),
    ],
    ids=[
        "unknown-tag",
        "tag-with-other-keys",
        "unaligned-array",
        "unaligned-scalar",
        "offset-false",
        "length-true",
        "bool-2",
        "datetime-scalar",
        "datetime-key",
        "string-array",
        "subarray-dtype",
    ],
)
def test_what_pack_value_never_makes_is_a_protocol_error_every_time(data: bytes) -> None:
    # Twice: a dict of arrays is decoded through a cached plan the second time.
    for _ in range(2):
        with pytest.raises(ProtocolError):
            unpack_value(data)


def test_a_cached_layout_still_checks_its_bools() -> None:
    good = pack_value({"_mask": np.array([True, False, True]), "n": np.arange(3)})
    unpack_value(good)
    with pytest.raises(ProtocolError, match="0 or 1"):
        unpack_value(_bools_with_a_two("_mask"))
    assert unpack_value(good)["_mask"].tolist() == [True, False, True]


def test_a_rest_bodys_values_keep_what_json_has_not() -> None:
    """env_kwargs and wrappers: the JSON part alone, tags and all, with no blob."""
    given = {"frameskip": (2, 5), "inf": float("inf"), "keys": {1: "one"}, "n": np.int64(3)}
    text = json.dumps(json_value(given), allow_nan=False)
    assert value_from_json(json.loads(text)) == {**given, "n": 3}
    assert value_from_json({"plain": [1, "json"]}) == {"plain": [1, "json"]}
    with pytest.raises(ProtocolError, match="arrays and bytes cannot travel"):
        json_value({"x": np.zeros(2)})
    with pytest.raises(ProtocolError, match=r"\$nd carries an array, bytes or a numpy value"):
        value_from_json({"x": {"$nd": [0, "<f4", [2]]}})
    with pytest.raises(ProtocolError, match="unknown tag '\\$x'"):
        value_from_json({"$x": 1, "y": 2})
