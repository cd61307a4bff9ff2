"""The netgym wire protocol: frames, space specs, batch layouts and values.

docs/protocol.md is the written description; this package is its one
implementation in Python, shared by the client and the services.
"""

from netgym.protocol.frames import PROTOCOL_VERSION, MessageType
from netgym.protocol.results import ResultLayout
from netgym.protocol.spaces import BatchLayout, pack_space, unpack_space
from netgym.protocol.values import pack_value, unpack_value

__all__ = [
    "PROTOCOL_VERSION",
    "BatchLayout",
    "MessageType",
    "ResultLayout",
    "pack_space",
    "pack_value",
    "unpack_space",
    "unpack_value",
]
