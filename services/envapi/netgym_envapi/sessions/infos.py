"""Merge per-env info dicts into one vector info, the way Gymnasium's vector envs do.

Every key of an env's info becomes an array over envs plus a boolean mask
``_key`` saying which envs set it; nested dicts are merged recursively, and
``final_obs`` is an object array of single observations.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def merge_infos(num_envs: int, env_infos: Iterable[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """The vector info for ``(env_index, info)`` pairs."""
    merged: dict[str, Any] = {}
    for index, info in env_infos:
        _add(merged, info, index, num_envs)
    return merged


def _add(merged: dict[str, Any], info: dict[str, Any], index: int, num_envs: int) -> None:
    for key, value in info.items():
        if key == "final_obs":
            array = merged.get(key)
            if array is None:
                array = np.full(num_envs, None, dtype=object)
            array[index] = value
        elif isinstance(value, dict):
            array = merged.get(key, {})
            _add(array, value, index, num_envs)
        else:
            array = merged.get(key)
            if array is None:
                array = _empty_like(value, num_envs)
            array[index] = value
        mask = merged.get(f"_{key}")
        if mask is None:
            mask = np.zeros(num_envs, dtype=np.bool_)
        mask[index] = True
        merged[key], merged[f"_{key}"] = array, mask


def _empty_like(value: Any, num_envs: int) -> np.ndarray:
    if type(value) in (int, float, bool) or isinstance(value, np.number | np.bool_):
        return np.zeros(num_envs, dtype=type(value))
    if isinstance(value, np.ndarray):
        return np.zeros((num_envs, *value.shape), dtype=value.dtype)
    return np.full(num_envs, None, dtype=object)
