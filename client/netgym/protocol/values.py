"""The codec for free-form values: info dicts, reset options, error details.

A value is JSON for its structure and raw bytes for its arrays, never JSON for
array contents (docs/protocol.md, "Values")::

    u32 LE  length of the JSON text
    JSON    UTF-8; arrays appear as {"$nd": [offset, dtype, shape]}
    pad     zero bytes up to a multiple of 8
    blob    the arrays' bytes, each at an 8-aligned offset into the blob
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from netgym.errors import ProtocolError

_LENGTH = struct.Struct("<I")
_NON_FINITE = ("nan", "inf", "-inf")
_TAGS = ("$nd", "$np", "$obj", "$tuple", "$bytes", "$float", "$dict")
_JSON_TAGS = ("$tuple", "$float", "$dict")  # those of a value with no blob


class _Encoder:
    def __init__(self) -> None:
        self.chunks: list[bytes | memoryview] = []
        self.size = 0

    def _add(self, data: bytes | memoryview) -> int:
        offset = self.size
        self.chunks.append(data)
        self.size += len(data)
        pad = -self.size % 8
        if pad:
            self.chunks.append(b"\0" * pad)
            self.size += pad
        return offset

    def tree(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):  # np.float64 too: it subclasses float
            return float(value) if math.isfinite(value) else {"$float": _non_finite(value)}
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                return {
                    "$obj": {
                        "shape": list(value.shape),
                        "items": [self.tree(v) for v in value.reshape(-1)],
                    }
                }
            if value.dtype.kind not in "biufc":
                raise ProtocolError(f"cannot send an array of dtype {value.dtype}")
            data = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
            # memoryview.cast refuses shapes with a 0 in them: an empty array has no bytes.
            raw = data.data.cast("B") if data.size else b""
            return {"$nd": [self._add(raw), data.dtype.str, list(value.shape)]}
        if isinstance(value, np.generic):
            array = np.asarray(value)
            if array.dtype.kind not in "biufc":
                return self.tree(value.item())
            scalar = array.astype(array.dtype.newbyteorder("<"))
            return {"$np": [self._add(scalar.tobytes()), scalar.dtype.str]}
        if isinstance(value, bytes | bytearray | memoryview):
            raw = bytes(value)
            return {"$bytes": [self._add(raw), len(raw)]}
        if isinstance(value, tuple):
            return {"$tuple": [self.tree(v) for v in value]}
        if isinstance(value, list):
            return [self.tree(v) for v in value]
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith("$") for k in value):
                return {k: self.tree(v) for k, v in value.items()}
            return {"$dict": [[self.tree(k), self.tree(v)] for k, v in value.items()]}
        raise ProtocolError(
            f"cannot send a value of type {type(value).__name__}: values are None, bool, int, "
            "float, str, bytes, lists, tuples, dicts and numeric numpy arrays"
        )


class _JsonEncoder(_Encoder):
    """The JSON part alone: numpy scalars as Python numbers, no arrays or bytes."""

    def _add(self, data: bytes | memoryview) -> int:
        raise ProtocolError(
            "arrays and bytes cannot travel in a REST request's JSON: give lists "
            "(array.tolist()) and plain numbers"
        )

    def tree(self, value: Any) -> Any:
        if isinstance(value, np.ndarray):  # an object array needs no blob, but is one too
            self._add(b"")
        if isinstance(value, np.generic) and not isinstance(value, float):
            return super().tree(value.item())
        return super().tree(value)


def json_value(value: Any) -> Any:
    """``value`` as a value's JSON with no blob: what a REST body carries where a
    Python value must arrive as it was (``env_kwargs`` and ``wrappers``: tuples,
    non-finite floats and dicts with keys other than plain strings, tagged).

    Raises:
        ProtocolError: for arrays, bytes and any type the codec cannot carry.
    """
    try:
        return _JsonEncoder().tree(value)
    except RecursionError:
        raise ProtocolError("cannot send a value nested this deeply") from None


def value_from_json(tree: Any) -> Any:
    """Decode what ``json_value`` made (a plain JSON value is itself).

    Raises:
        ProtocolError: for a tag that is unknown, or that needs a blob.
    """
    pending = [tree]
    while pending:  # no recursion: the tree may be deep
        node = pending.pop()
        if isinstance(node, dict):
            if len(node) == 1 and (tag := next(iter(node))) in _TAGS and tag not in _JSON_TAGS:
                raise ProtocolError(
                    f"{tag} carries an array, bytes or a numpy value, which a REST request's "
                    f"JSON does not: its tags are {', '.join(_JSON_TAGS)}"
                )
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    try:
        return _decode(tree, memoryview(b""))
    except RecursionError:
        raise ProtocolError("a value is nested too deeply") from None
    except (KeyError, IndexError, TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"a value's structure is malformed: {exc!r}") from None


def _non_finite(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


# A vector info is a dict of numeric arrays whose keys, dtypes and shapes
# repeat step after step: its JSON text is made once and reused (packing), and
# parsed once and reused (unpacking). Both caches are small and bounded.
_CACHE_ENTRIES = 64
_FLAT_DTYPES: dict[np.dtype[Any], str] = {}
_flat_heads: dict[tuple[tuple[str, str, tuple[int, ...]], ...], bytes] = {}


@dataclass(frozen=True)
class _FlatPlan:
    """How to decode a flat dict of arrays without its JSON: (key, offset, dtype, shape)."""

    arrays: list[tuple[str, int, np.dtype[Any], tuple[int, ...]]]
    extent: int  # bytes of the blob the arrays span
    bools: list[tuple[int, int]]  # (start, stop) of each bool array's bytes: 0 or 1 each


_flat_plans: dict[bytes, _FlatPlan] = {}


def _flat_signature(value: dict[Any, Any]) -> tuple[tuple[str, str, tuple[int, ...]], ...] | None:
    """Keys, dtypes and shapes of a dict of contiguous little-endian numeric arrays, else None."""
    signature = []
    for key, array in value.items():
        if type(array) is not np.ndarray or not array.flags.c_contiguous:
            return None
        dtype = array.dtype
        if dtype not in _FLAT_DTYPES:
            if dtype.kind not in "biuf" or dtype.str[0] == ">":
                return None
            _FLAT_DTYPES[dtype] = dtype.str
        if type(key) is not str or key[:1] == "$":
            return None
        signature.append((key, _FLAT_DTYPES[dtype], array.shape))
    return tuple(signature)


def _pack_flat(value: dict[str, np.ndarray], head: bytes) -> bytes:
    chunks = [head]
    for array in value.values():
        if array.nbytes:
            chunks.append(array.data.cast("B"))  # type: ignore[arg-type]
            pad = -array.nbytes % 8
            if pad:
                chunks.append(b"\0" * pad)
    return b"".join(chunks)


def pack_value(value: Any) -> bytes:
    """Encode a value; see the module docstring for the format.

    Raises:
        ProtocolError: for a type the codec cannot carry, a value nested too
            deeply, or an int too long for JSON.
    """
    signature = _flat_signature(value) if type(value) is dict and value else None
    if signature is not None and signature in _flat_heads:
        return _pack_flat(value, _flat_heads[signature])
    encoder = _Encoder()
    try:
        tree = encoder.tree(value)
        text = json.dumps(tree, separators=(",", ":"), allow_nan=False).encode()
    except RecursionError:
        raise ProtocolError("cannot send a value nested this deeply") from None
    except ValueError as exc:  # an int of more than 4300 digits, say
        raise ProtocolError(f"cannot send this value: {exc}") from None
    head = _LENGTH.pack(len(text)) + text
    head += b"\0" * (-len(head) % 8)
    if signature is not None:
        if len(_flat_heads) >= _CACHE_ENTRIES:
            _flat_heads.clear()
        _flat_heads[signature] = head
    return b"".join([head, *encoder.chunks])


def unpack_value(data: bytes | bytearray | memoryview, *, copy: bool = True) -> Any:
    """Decode what ``pack_value`` made; arrays come back as copies.

    With ``copy=False``, the arrays of a flat dict of arrays (a vector info)
    may be views of ``data``: for a caller that owns ``data`` and never
    reuses it.

    Raises:
        ProtocolError: when the bytes are not a valid encoding.
    """
    view = memoryview(data).cast("B")
    if len(view) < _LENGTH.size:
        raise ProtocolError(f"a value needs at least 4 bytes, got {len(view)}")
    (length,) = _LENGTH.unpack_from(view)
    if _LENGTH.size + length > len(view):
        raise ProtocolError(f"a value's JSON claims {length} bytes but only {len(view) - 4} follow")
    text = bytes(view[_LENGTH.size : _LENGTH.size + length])
    start = _LENGTH.size + length
    blob = view[start + (-start % 8) :]
    plan = _flat_plans.get(text)
    if plan is not None and plan.extent <= len(blob):
        for bool_start, bool_stop in plan.bools:
            _check_bools(blob[bool_start:bool_stop])
        source = blob if not copy else np.frombuffer(blob, np.uint8, plan.extent).copy()
        return {
            key: np.frombuffer(source, dtype, shape[0], offset)
            if len(shape) == 1
            else np.frombuffer(source, dtype, math.prod(shape), offset).reshape(shape)
            for key, offset, dtype, shape in plan.arrays
        }
    try:
        tree = json.loads(text)
    except RecursionError:
        raise ProtocolError("a value's JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a too long int
        raise ProtocolError(f"a value's JSON is malformed: {exc}") from None
    try:
        value = _decode(tree, blob)
    except RecursionError:
        raise ProtocolError("a value is nested too deeply") from None
    except (KeyError, IndexError, TypeError, ValueError, OverflowError, MemoryError) as exc:
        raise ProtocolError(f"a value's structure is malformed: {exc!r}") from None
    _remember_plan(text, tree)
    return value


def _remember_plan(text: bytes, tree: Any) -> None:
    """Keep how to decode a flat dict of native, non-empty numeric arrays, to skip its JSON."""
    if not isinstance(tree, dict) or not tree:
        return
    arrays, extent, bools = [], 0, []
    for key, node in tree.items():
        if key.startswith("$") or not isinstance(node, dict) or list(node) != ["$nd"]:
            return
        try:
            offset, dtype_text, shape = node["$nd"]
            dtype = np.dtype(dtype_text)
        except (TypeError, ValueError):
            return
        if not isinstance(shape, list) or not all(type(n) is int and 0 < n < 2**62 for n in shape):
            return  # for _decode to refuse, or to decode the general way
        shape = tuple(shape)
        count = math.prod(shape)
        native = dtype.newbyteorder("=") == dtype
        if (
            not isinstance(offset, int)
            or offset < 0
            or offset % 8
            or count <= 0
            or dtype.kind not in "biuf"
            or not native
        ):
            return
        arrays.append((key, offset, dtype, shape))
        extent = max(extent, offset + dtype.itemsize * count)
        if dtype.kind == "b":
            bools.append((offset, offset + count))
    if len(_flat_plans) >= _CACHE_ENTRIES:
        _flat_plans.clear()
    _flat_plans[text] = _FlatPlan(arrays, extent, bools)


def _decode(tree: Any, blob: memoryview) -> Any:
    if isinstance(tree, list):
        return [_decode(v, blob) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if len(tree) == 1:
        ((tag, body),) = tree.items()
        if tag == "$nd":
            offset, dtype, shape = body
            dt = _numeric_dtype(dtype)
            count = math.prod(shape)
            _check_span(blob, offset, dt.itemsize * count)
            if count == 0:
                return np.empty(shape, dtype=dt.newbyteorder("="))
            if dt.kind == "b":
                _check_bools(blob[offset : offset + count])
            return (
                np.frombuffer(blob, dtype=dt, count=count, offset=offset)
                .reshape(shape)
                .astype(dt.newbyteorder("="))
            )
        if tag == "$np":
            offset, dtype = body
            dt = _numeric_dtype(dtype)
            _check_span(blob, offset, dt.itemsize)
            if dt.kind == "b":
                _check_bools(blob[offset : offset + 1])
            return np.frombuffer(blob, dtype=dt, count=1, offset=offset).astype(
                dt.newbyteorder("=")
            )[0]
        if tag == "$obj":
            array = np.empty(len(body["items"]), dtype=object)
            for i, item in enumerate(body["items"]):
                array[i] = _decode(item, blob)
            return array.reshape(body["shape"])
        if tag == "$tuple":
            return tuple(_decode(v, blob) for v in body)
        if tag == "$bytes":
            offset, length = body
            _check_span(blob, offset, length)
            return bytes(blob[offset : offset + length])
        if tag == "$float":
            if body not in _NON_FINITE:
                raise ProtocolError(f'a "$float" is "nan", "inf" or "-inf", not {body!r}')
            return float(body)
        if tag == "$dict":
            return {_hashable(_decode(k, blob)): _decode(v, blob) for k, v in body}
    for key in tree:
        if key.startswith("$"):
            # pack_value sends such keys inside a "$dict": this is no value it made.
            raise ProtocolError(
                f"unknown tag {key!r}: a key that starts with $ is one of "
                f"{', '.join(_TAGS)}, alone in its object"
            )
    return {k: _decode(v, blob) for k, v in tree.items()}


def _numeric_dtype(text: Any) -> np.dtype[Any]:
    """The dtype an array's JSON names: one that ``pack_value`` sends (bool, integer,
    float, complex), never a datetime, a string or a structure."""
    dtype: np.dtype[Any] = np.dtype(text)
    if dtype.kind not in "biufc":
        raise ProtocolError(f"an array's dtype is a number or bool, not {text!r}")
    return dtype


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def _check_span(blob: memoryview, offset: int, length: int) -> None:
    if type(offset) is not int or type(length) is not int:  # false would pass for 0
        raise ProtocolError(
            f"an array's offset and length are integers, not {offset!r}, {length!r}"
        )
    if offset < 0 or length < 0 or offset + length > len(blob):
        raise ProtocolError(
            f"an array at offset {offset} of {length} bytes runs past the {len(blob)}-byte blob"
        )
    if offset % 8:
        raise ProtocolError(f"an array's offset into the blob is a multiple of 8, not {offset}")


def _check_bools(data: memoryview) -> None:
    """A bool array's bytes are 0 or 1 (numpy would keep a 2 and misbehave later)."""
    if data.tobytes().translate(None, b"\0\1"):
        raise ProtocolError("a bool array's bytes are 0 or 1")


__all__ = ["pack_value", "unpack_value"]
