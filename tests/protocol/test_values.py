"""Info dicts and reset options survive the value codec exactly."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

from netgym.errors import ProtocolError
from netgym.protocol import pack_value, unpack_value

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
}


@pytest.mark.parametrize("value", VALUES.values(), ids=VALUES.keys())
def test_roundtrip(value: object) -> None:
    back = unpack_value(pack_value(value))
    if value == VALUES["non-finite"]:
        assert np.isnan(back["nan"]) and back["inf"] == float("inf")
        return
    assert data_equivalence(back, value, exact=True)


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
    ],
    ids=["empty", "truncated-json", "length-past-end", "not-utf8", "array-past-blob"],
)
def test_malformed_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        unpack_value(data)


def test_unknown_type_is_refused() -> None:
    with pytest.raises(ProtocolError, match="cannot send"):
        pack_value({"x": object()})
