"""merge_infos gives exactly what Gymnasium's vector envs give."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import VectorEnv

from netgym.protocol.values import pack_value, unpack_value
from netgym_envapi.sessions.infos import InfoPacker, merge_infos

CASES: dict[str, list[tuple[int, dict[str, Any]]]] = {
    "empty": [],
    "ale-like": [(i, {"lives": 3, "frame_number": np.int64(4 * i)}) for i in range(4)],
    "some-envs": [(1, {"x": 1.5}), (3, {"x": 2.5, "flag": True})],
    "arrays": [(0, {"pos": np.ones(2, np.float32)}), (2, {"pos": np.zeros(2, np.float32)})],
    "nested": [(0, {"episode": {"r": 1.0, "l": 10}}), (2, {"episode": {"r": -1.0, "l": 3}})],
    "final": [(1, {"final_obs": np.arange(3), "final_info": {"a": 1}})],
    "objects": [(0, {"name": "a"}), (1, {"name": "b"})],
    # Every env, the same keys, one plain type: the one-array path.
    "game-floats": [(i, {"lives": 3.0 - i, "x": 0.5 * i, "y": -1.0}) for i in range(4)],
    "game-ints": [(i, {"lives": 3 - i, "level": i}) for i in range(4)],
    "game-bools": [(i, {"flag": i % 2 == 0}) for i in range(4)],
    # Workers answer in any order.
    "game-out-of-order": [(i, {"lives": 3.0 - i, "level": 1.0}) for i in (0, 2, 3, 1)],
    # Near misses of it: mixed types, different keys or order, a huge int.
    "mixed-types": [(i, {"x": 1.0 if i else 1, "y": 2.0}) for i in range(4)],
    "key-order": [(i, {"a": 1.0, "b": 2.0} if i else {"b": 2.0, "a": 1.0}) for i in range(4)],
    "missing-key": [(i, {"a": 1.0, "b": 2.0} if i else {"a": 1.0}) for i in range(4)],
}


@pytest.mark.parametrize("infos", CASES.values(), ids=CASES.keys())
def test_same_as_gymnasium(infos: list[tuple[int, dict[str, Any]]]) -> None:
    vector = SimpleNamespace(num_envs=4)
    vector._add_info = lambda *args: VectorEnv._add_info(vector, *args)  # recursive calls
    expected: dict[str, Any] = {}
    for index, info in infos:
        expected = VectorEnv._add_info(vector, expected, info, index)
    assert data_equivalence(merge_infos(4, infos), expected, exact=True)


@pytest.mark.parametrize("infos", CASES.values(), ids=CASES.keys())
def test_packer_gives_the_general_encoding(infos: list[tuple[int, dict[str, Any]]]) -> None:
    packer = InfoPacker(4)
    for _ in range(3):  # learns on the first call, takes its shortcut on the later ones
        assert packer.pack(infos) == pack_value(merge_infos(4, infos))


def test_packer_follows_an_info_that_changes() -> None:
    packer = InfoPacker(2)
    steps = [
        [(0, {"lives": 3.0}), (1, {"lives": 2.0})],
        [(0, {"lives": 1.0}), (1, {"lives": 0.0})],
        [(0, {"lives": 1}), (1, {"lives": 0})],  # ints now
        [(0, {"lives": 1.0}), (1, {"lives": 0.0, "extra": 1.0})],
        [(1, {"lives": 4.0}), (0, {"lives": 5.0})],
        [(0, {"lives": 1.0, "level": 2.0}), (1, {"lives": 0.0, "level": 3.0})],
        [(0, {"lives": 1.0, "level": 2.0}), (1, {"lives": 0.0, "level": 3.0})],
    ]
    for infos in steps:
        assert packer.pack(infos) == pack_value(merge_infos(2, infos)), infos
        assert unpack_value(packer.pack(infos)).keys() == merge_infos(2, infos).keys()


def test_packer_falls_back_on_an_int_beyond_64_bits() -> None:
    packer = InfoPacker(2)
    small = [(0, {"score": 1}), (1, {"score": 2})]
    packer.pack(small)
    assert packer.pack(small) == pack_value(merge_infos(2, small))  # the shortcut now
    huge = [(0, {"score": 2**70}), (1, {"score": 2})]
    # The general encoder's error, which the session turns into a ProtocolError
    # for the client and goes on; not struct's, which would end the session.
    with pytest.raises(OverflowError):
        merge_infos(2, huge)
    with pytest.raises(OverflowError):
        packer.pack(huge)
