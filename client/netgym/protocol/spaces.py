"""Space specs, and the byte layout of a batch of values of a space.

A space spec is a JSON object from which the peer rebuilds the exact Gymnasium
space (docs/protocol.md, "Space specs"). A batch of ``n`` values of a space
travels as its leaves (Box, Discrete, MultiBinary, MultiDiscrete; Dict keys in
spec order, Tuple items in order), each leaf an ``(n, *shape)`` array of its
dtype in little-endian C order, each starting at a multiple of 8 bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
from gymnasium import spaces

from netgym.errors import InvalidActionError, ProtocolError, UnsupportedSpaceError

JsonBound = float | int | str | list[Any]

ALIGNMENT = 8


def _pack_bound(values: np.ndarray) -> JsonBound:
    """A Box bound as JSON: one number when uniform, else a flat row-major list."""
    flat = values.reshape(-1)
    if flat.size > 0 and np.all(flat == flat[0]):
        return _pack_number(flat[0])
    return [_pack_number(v) for v in flat]


def _pack_number(value: Any) -> float | int | str:
    if isinstance(value, np.integer | int):
        return int(value)
    number = float(value)
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    if math.isnan(number):
        return "nan"
    return number


def _unpack_bound(value: Any, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    if isinstance(value, list):
        if len(value) != math.prod(shape):
            raise ProtocolError(
                f"a Box bound lists {len(value)} values but the shape {shape} "
                f"holds {math.prod(shape)}"
            )
        return np.array(
            [float(v) if isinstance(v, str) else v for v in value], dtype=dtype
        ).reshape(shape)
    number = float(value) if isinstance(value, str) else value
    return np.full(shape, number, dtype=dtype)


def pack_space(space: spaces.Space[Any]) -> dict[str, Any]:
    """The JSON spec of ``space``.

    Raises:
        UnsupportedSpaceError: for spaces with no fixed-size layout.
    """
    if isinstance(space, spaces.Box):
        return {
            "type": "box",
            "dtype": np.dtype(space.dtype).name,
            "shape": list(space.shape),
            "low": _pack_bound(space.low),
            "high": _pack_bound(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {
            "type": "discrete",
            "dtype": np.dtype(space.dtype).name,
            "n": int(space.n),
            "start": int(space.start),
        }
    if isinstance(space, spaces.MultiBinary):
        n = space.n if isinstance(space.n, int | np.integer) else np.asarray(space.n).tolist()
        return {
            "type": "multi_binary",
            "n": n if isinstance(n, list) else int(n),
            "shape": list(space.shape),
        }
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "multi_discrete",
            "dtype": np.dtype(space.dtype).name,
            "nvec": space.nvec.tolist(),
            "start": space.start.tolist(),
        }
    if isinstance(space, spaces.Dict):
        return {"type": "dict", "spaces": [[key, pack_space(sub)] for key, sub in space.items()]}
    if isinstance(space, spaces.Tuple):
        return {"type": "tuple", "spaces": [pack_space(sub) for sub in space]}
    raise UnsupportedSpaceError(
        f"netgym cannot carry a {type(space).__name__} space: only Box, Discrete, "
        "MultiBinary, MultiDiscrete, Dict and Tuple have a fixed-size layout; "
        "wrap the env so that its spaces are of these kinds"
    )


def unpack_space(spec: dict[str, Any]) -> spaces.Space[Any]:
    """The Gymnasium space a spec describes.

    Raises:
        ProtocolError: when the spec is malformed.
    """
    try:
        kind = spec["type"]
        if kind == "box":
            shape = tuple(int(d) for d in spec["shape"])
            dtype = np.dtype(spec["dtype"])
            return spaces.Box(
                low=_unpack_bound(spec["low"], shape, dtype),
                high=_unpack_bound(spec["high"], shape, dtype),
                shape=shape,
                dtype=dtype.type,
            )
        if kind == "discrete":
            return spaces.Discrete(
                int(spec["n"]), start=int(spec.get("start", 0)), dtype=spec.get("dtype", "int64")
            )
        if kind == "multi_binary":
            n = spec.get("n", spec["shape"])
            return spaces.MultiBinary(n if isinstance(n, int) else [int(d) for d in n])
        if kind == "multi_discrete":
            dtype = np.dtype(spec.get("dtype", "int64"))
            nvec = np.array(spec["nvec"], dtype=dtype)
            start = np.array(spec.get("start", np.zeros_like(nvec)), dtype=dtype)
            return spaces.MultiDiscrete(nvec, dtype=dtype.type, start=start)
        if kind == "dict":
            # Pairs, not a dict: from a dict Gymnasium would sort the keys, and the
            # leaves would be read in an order other than the one they were sent in.
            pairs = [(key, unpack_space(sub)) for key, sub in spec["spaces"]]
            return spaces.Dict(pairs, sort_keys=False)
        if kind == "tuple":
            return spaces.Tuple([unpack_space(sub) for sub in spec["spaces"]])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed space spec {spec!r}: {exc}") from exc
    raise ProtocolError(f"unknown space type {spec.get('type')!r} in spec {spec!r}")


@dataclass(frozen=True)
class Leaf:
    """One array of a batch: where it lies in the message and what it holds."""

    path: str
    space: spaces.Space[Any]
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    offset: int
    nbytes: int


def _leaf_spaces(space: spaces.Space[Any], path: str) -> list[tuple[str, spaces.Space[Any]]]:
    if isinstance(space, spaces.Dict):
        return [
            leaf for key, sub in space.items() for leaf in _leaf_spaces(sub, f"{path}[{key!r}]")
        ]
    if isinstance(space, spaces.Tuple):
        return [leaf for i, sub in enumerate(space) for leaf in _leaf_spaces(sub, f"{path}[{i}]")]
    pack_space(space)  # raises UnsupportedSpaceError for spaces with no layout
    return [(path, space)]


def _aligned(offset: int) -> int:
    return (offset + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


class BatchLayout:
    """The bytes of ``num_envs`` values of ``space``: leaves in order, 8-byte aligned."""

    def __init__(self, space: spaces.Space[Any], num_envs: int, name: str = "value") -> None:
        self.space = space
        self.num_envs = num_envs
        self.leaves: list[Leaf] = []
        offset = 0
        for path, leaf_space in _leaf_spaces(space, name):
            dtype = np.dtype(leaf_space.dtype).newbyteorder("<")
            shape = (num_envs, *(leaf_space.shape or ()))
            nbytes = dtype.itemsize * math.prod(shape)
            self.leaves.append(Leaf(path, leaf_space, dtype, shape, offset, nbytes))
            offset = _aligned(offset + nbytes)
        self.nbytes = offset
        # Discrete leaves, checked on Python ints: numpy's calls cost more on a few values.
        self._discrete_ranges = [
            (int(leaf.space.start), int(leaf.space.start + leaf.space.n))
            if isinstance(leaf.space, spaces.Discrete) and num_envs <= 256
            else None
            for leaf in self.leaves
        ]

    def views(self, buffer: Any, offset: int = 0) -> list[np.ndarray]:
        """Arrays over ``buffer`` (no copy), one per leaf."""
        return [
            np.frombuffer(
                buffer, dtype=leaf.dtype, count=math.prod(leaf.shape), offset=offset + leaf.offset
            ).reshape(leaf.shape)
            for leaf in self.leaves
        ]

    def assemble(self, leaves: Sequence[np.ndarray]) -> Any:
        """The batch value (array, dict or tuple of arrays) from its leaf arrays."""
        iterator = iter(leaves)
        return _assemble(self.space, iterator)

    def flatten(self, value: Any) -> list[Any]:
        """The leaves of a value (batched or single) in layout order.

        Raises:
            ValueError: when ``value`` is not made as the space is (a dict with other
                keys, a tuple of another length).
        """
        return _flatten(self.space, value)

    def flatten_action(self, value: Any) -> list[Any]:
        """``flatten`` for an action.

        Raises:
            InvalidActionError: when ``value`` is not made as the space is.
        """
        try:
            return _flatten(self.space, value)
        except ValueError as exc:
            raise InvalidActionError(str(exc)) from None

    def pack_into(self, buffer: Any, batch: Any, offset: int = 0, what: str = "action") -> None:
        """Write a batch into ``buffer``, converting each leaf to its dtype.

        Raises:
            InvalidActionError: when a leaf has the wrong shape or cannot be cast.
        """
        self.write(self.views(buffer, offset), batch, what)

    def write(self, views: Sequence[np.ndarray], batch: Any, what: str = "action") -> None:
        """``pack_into`` for the arrays ``views`` gave once, to reuse them every step.

        Raises:
            InvalidActionError: when a leaf has the wrong shape or cannot be cast.
        """
        for view, leaf, value in zip(views, self.leaves, self.flatten_action(batch), strict=True):
            array = np.asarray(value)
            if array.shape != leaf.shape:
                raise InvalidActionError(
                    f"{leaf.path} has shape {array.shape}, expected {leaf.shape} "
                    f"(num_envs={self.num_envs}, space {leaf.space})"
                )
            if not np.can_cast(array.dtype, leaf.dtype):
                if array.dtype.kind in "iu" and leaf.dtype.kind in "iu":
                    _check_fits(leaf, array)  # casting would wrap 257 round to 1, -1 to 255
                elif not np.can_cast(array.dtype, leaf.dtype, casting="same_kind"):
                    raise InvalidActionError(
                        f"{leaf.path} has dtype {array.dtype}, which cannot be cast to "
                        f"{leaf.dtype} of {leaf.space}"
                    )
            view[...] = array

    def check(self, leaves: Sequence[np.ndarray], what: str = "action") -> None:
        """Check that every value lies in its space.

        Raises:
            InvalidActionError: naming the env, the value and the space.
        """
        for leaf, array, bounds in zip(self.leaves, leaves, self._discrete_ranges, strict=True):
            if bounds is not None:
                values = array.tolist()
                if bounds[0] <= min(values) and max(values) < bounds[1]:
                    continue
            inside = _contains(leaf.space, array)
            if not inside.all():
                _refuse_first(leaf, array, ~inside)


def _check_fits(leaf: Leaf, array: np.ndarray) -> None:
    """Refuse integers that ``leaf``'s dtype cannot hold, before casting would wrap them."""
    if array.size == 0:
        return
    limits = np.iinfo(leaf.dtype)
    outside = (array < limits.min) | (array > limits.max)
    if outside.any():
        _refuse_first(leaf, array, outside)


def _refuse_first(leaf: Leaf, array: np.ndarray, outside: np.ndarray) -> NoReturn:
    """Raise for the first env whose value (``array``'s row) is ``outside`` the space."""
    env = int(np.flatnonzero(outside.reshape(array.shape[0], -1).any(axis=1))[0])
    raise InvalidActionError(
        f"{leaf.path} for env {env} is {array[env].tolist()!r}, which is not in {leaf.space}",
        details={"env_index": env, "path": leaf.path},
    )


def _contains(space: spaces.Space[Any], array: np.ndarray) -> np.ndarray:
    if isinstance(space, spaces.Discrete):
        return np.asarray((array >= space.start) & (array < space.start + space.n))
    if isinstance(space, spaces.MultiDiscrete):
        return np.asarray((array >= space.start) & (array < space.start + space.nvec))
    if isinstance(space, spaces.MultiBinary):
        return np.asarray((array == 0) | (array == 1))
    if isinstance(space, spaces.Box):
        return np.asarray((array >= space.low) & (array <= space.high))
    raise UnsupportedSpaceError(f"no check for {space}")


def _assemble(space: spaces.Space[Any], leaves: Any) -> Any:
    if isinstance(space, spaces.Dict):
        return {key: _assemble(sub, leaves) for key, sub in space.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_assemble(sub, leaves) for sub in space)
    return next(leaves)


def _flatten(space: spaces.Space[Any], value: Any) -> list[Any]:
    if isinstance(space, spaces.Dict):
        if not isinstance(value, dict):
            raise ValueError(f"expected a dict for {space}, got {type(value).__name__}")
        if value.keys() != space.keys():
            missing = [key for key in space.spaces if key not in value]
            unknown = [key for key in value if key not in space.spaces]
            raise ValueError(
                f"missing keys {missing} for {space}"
                if missing
                else f"keys {unknown} are not in {space} (Gymnasium's Dict.contains refuses them)"
            )
        return [leaf for key, sub in space.items() for leaf in _flatten(sub, value[key])]
    if isinstance(space, spaces.Tuple):
        if not isinstance(value, tuple | list) or len(value) != len(space):
            raise ValueError(f"expected a tuple of {len(space)} items for {space}")
        return [
            leaf for sub, item in zip(space, value, strict=True) for leaf in _flatten(sub, item)
        ]
    return [value]
