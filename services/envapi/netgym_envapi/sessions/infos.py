"""Merge per-env info dicts into one vector info, the way Gymnasium's vector envs do.

Every key of an env's info becomes an array over envs plus a boolean mask
``_key`` saying which envs set it; nested dicts are merged recursively, and
``final_obs`` is an object array of single observations. The result equals
Gymnasium's ``VectorEnv._add_info`` applied env by env, but groups values by
key first so that each array is built once per step, not once per env.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from typing import Any

import numpy as np


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
