"""Merge per-env info dicts into one vector info, the way Gymnasium's vector envs do.

Every key of an env's info becomes an array over envs plus a boolean mask
``_key`` saying which envs set it; nested dicts are merged recursively, and
``final_obs`` is an object array of single observations. The result equals
Gymnasium's ``VectorEnv._add_info`` applied env by env, but groups values by
key first so that each array is built once per step, not once per env.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from operator import itemgetter
from typing import Any

import numpy as np

from netgym.protocol.values import pack_value


def merge_infos(num_envs: int, env_infos: Iterable[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """The vector info for ``(env_index, info)`` pairs."""
    env_infos = list(env_infos)
    uniform = _merge_uniform(num_envs, env_infos)
    if uniform is not None:
        return uniform
    grouped: dict[str, list[tuple[int, Any]]] = {}
    for index, info in env_infos:
        for key, value in info.items():
            grouped.setdefault(key, []).append((index, value))
    merged: dict[str, Any] = {}
    for key, items in grouped.items():
        indices = [index for index, _ in items]
        values = [value for _, value in items]
        first = values[0]
        if key == "final_obs":
            array: Any = np.full(num_envs, None, dtype=object)
            for index, value in items:
                array[index] = value
        elif isinstance(first, dict):
            array = merge_infos(num_envs, ((i, v if isinstance(v, dict) else {}) for i, v in items))
        elif type(first) in (int, float, bool) or isinstance(first, np.number | np.bool_):
            array = np.zeros(num_envs, dtype=type(first))
            array[indices] = values
        elif isinstance(first, np.ndarray):
            array = np.zeros((num_envs, *first.shape), dtype=first.dtype)
            for index, value in items:
                array[index] = value
        else:
            array = np.full(num_envs, None, dtype=object)
            for index, value in items:
                array[index] = value
        mask = np.zeros(num_envs, dtype=np.bool_)
        mask[indices] = True
        merged[key], merged[f"_{key}"] = array, mask
    return merged


def _merge_uniform(
    num_envs: int, env_infos: list[tuple[int, dict[str, Any]]]
) -> dict[str, Any] | None:
    """The usual case, built in one array: every env sets the same keys, all to plain
    ints, floats or bools of one type (an emulator game's info, say); else None."""
    if len(env_infos) != num_envs or not env_infos or not env_infos[0][1]:
        return None
    if any(index != position for position, (index, _) in enumerate(env_infos)):
        env_infos = sorted(env_infos, key=itemgetter(0))  # workers answer in any order
    keys = tuple(env_infos[0][1])
    rows = [list(info.values()) for _, info in env_infos]
    kind = type(rows[0][0])
    if (
        kind not in (int, float, bool)
        or any(tuple(info) != keys for _, info in env_infos[1:])
        or not all(type(value) is kind for row in rows for value in row)
    ):
        return None
    try:
        by_key = np.array(rows, dtype=kind).T.copy()  # one contiguous row per key
    except OverflowError:  # an int beyond 64 bits: the general path says so
        return None
    masks = np.ones((len(keys), num_envs), dtype=np.bool_)
    merged: dict[str, Any] = {}
    for position, key in enumerate(keys):
        merged[key], merged[f"_{key}"] = by_key[position], masks[position]
    return merged


_STRUCT_CODES = {float: "d", int: "q", bool: "?"}


class InfoPacker:
    """``pack_value(merge_infos(...))`` for one session, with a shortcut for its usual info.

    An emulator game sends the same plain numbers every step. Once such an
    info has been encoded the general way, later ones with the same keys and
    types are packed by one ``struct`` call after the same JSON head; the
    shortcut is kept only when it gave exactly the general encoding's bytes.
    """

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs
        # keys, their value type, the JSON head, and the struct of the arrays after it
        self._shortcut: tuple[tuple[str, ...], type, bytes, struct.Struct] | None = None
        self._masks = [True] * num_envs

    def pack(self, env_infos: list[tuple[int, dict[str, Any]]]) -> bytes:
        fast = self._pack_fast(env_infos)
        if fast is not None:
            return fast
        packed = pack_value(merge_infos(self.num_envs, env_infos))
        self._learn(env_infos, packed)
        return packed

    def _arguments(
        self, env_infos: list[tuple[int, dict[str, Any]]], keys: tuple[str, ...], kind: type
    ) -> list[Any] | None:
        """The values key by key, each followed by its all-true mask; None if off pattern."""
        if len(env_infos) != self.num_envs:
            return None
        infos = []
        for position, (index, info) in enumerate(env_infos):
            if index != position or tuple(info) != keys:
                return None
            for value in info.values():
                if type(value) is not kind:
                    return None
            infos.append(info)
        arguments: list[Any] = []
        for key in keys:
            arguments += [info[key] for info in infos]
            arguments += self._masks
        return arguments

    def _pack_fast(self, env_infos: list[tuple[int, dict[str, Any]]]) -> bytes | None:
        if self._shortcut is None:
            return None
        keys, kind, head, layout = self._shortcut
        arguments = self._arguments(env_infos, keys, kind)
        if arguments is None:
            return None
        try:
            return head + layout.pack(*arguments)
        except struct.error:  # an int beyond 64 bits: the general encoder says what is wrong
            return None

    def _learn(self, env_infos: list[tuple[int, dict[str, Any]]], packed: bytes) -> None:
        """Keep a shortcut for infos like these when it reproduces ``packed`` exactly."""
        self._shortcut = None
        if not env_infos or not env_infos[0][1]:
            return
        keys = tuple(env_infos[0][1])
        kind = type(env_infos[0][1][keys[0]])
        if kind not in _STRUCT_CODES:
            return
        arguments = self._arguments(env_infos, keys, kind)
        if arguments is None:
            return
        n = self.num_envs
        pad = -n % 8
        values = f"{n}{_STRUCT_CODES[kind]}" + (f"{pad}x" if kind is bool and pad else "")
        masks = f"{n}?" + (f"{pad}x" if pad else "")
        layout = struct.Struct("<" + (values + masks) * len(keys))
        try:
            blob = layout.pack(*arguments)
        except struct.error:  # an int beyond 64 bits
            return
        if len(packed) > len(blob) and packed.endswith(blob):
            self._shortcut = (keys, kind, packed[: -len(blob)], layout)
