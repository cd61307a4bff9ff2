"""The client end of netgym's Lua bridge: one lockstep TCP connection to one FCEUX.

Every request is 5 bytes: a command byte (``S`` step, ``R`` reset, ``P`` ping,
``Q`` quit) and a u32 LE argument (the buttons bitmask, or the no-op frames
before play). Every reply is ``u32 length, header text, u32 length, screen
(GD: an 11-byte header then 256x240 ARGB), the named RAM bytes``; the header
is ``ok REWARD DONE key=value...`` or ``error MESSAGE`` (docs/games.md).
"""

from __future__ import annotations

import contextlib
import mmap
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netgym.errors import ConnectionLostError, EnvError

_cv2: Any
try:
    import cv2 as _cv2
except ImportError:  # the client library does not require OpenCV
    _cv2 = None

BUTTONS = ("a", "b", "select", "start", "up", "down", "left", "right")
SCREEN_SHAPE = (240, 256, 3)
GD_HEADER = 11
GD_BYTES = GD_HEADER + SCREEN_SHAPE[0] * SCREEN_SHAPE[1] * 4
_U32 = struct.Struct("<I")
# A reply's text (status, reward, done, info): far above any game's, far below harm.
MAX_HEADER_BYTES = 1 << 20


def argb_to_rgb(
    gd_screenshot: np.ndarray | memoryview | bytes | mmap.mmap, out: np.ndarray | None = None
) -> np.ndarray:
    """FCEUX's GD screenshot as a (240, 256, 3) RGB array.

    GD stores each pixel as the bytes A, R, G, B after an 11-byte header, so
    from the header's last byte on, every 4 bytes read as R, G, B and the next
    pixel's A: one RGBA-to-RGB conversion (OpenCV's when it is installed, as
    on the envapi) with no shifting. Reading the last pixel that way needs one
    byte past the screenshot, so ``gd_screenshot`` has ``GD_BYTES + 1`` bytes.
    With ``out`` (``SCREEN_SHAPE``, uint8, C-contiguous), the screen is written
    there and ``out`` returned.
    """
    height, width, channels = SCREEN_SHAPE
    rgba = np.frombuffer(gd_screenshot, np.uint8, height * width * 4, GD_HEADER + 1)
    rgba = rgba.reshape(height, width, 4)
    if out is not None:
        if _cv2 is not None:
            _cv2.cvtColor(rgba, _cv2.COLOR_RGBA2RGB, dst=out)
        else:
            out[...] = rgba[..., :channels]
        return out
    if _cv2 is not None:
        return np.asarray(_cv2.cvtColor(rgba, _cv2.COLOR_RGBA2RGB))
    return np.ascontiguousarray(rgba[..., :channels])


def buttons_mask(buttons: list[str] | tuple[str, ...]) -> int:
    """The bridge's bitmask for button names (bit i is ``BUTTONS[i]``)."""
    return sum(1 << BUTTONS.index(b) for b in buttons)


@dataclass
class BridgeReply:
    """What the bridge answered to a step or a reset."""

    reward: float
    done: bool
    info: dict[str, float] = field(default_factory=dict)
    screen: np.ndarray | None = None
    ram: np.ndarray | None = None


class BridgeConnection:
    """A lockstep connection to one instance's bridge.

    With ``screen_file`` (an instance started with ``screen_file: true`` on a
    host this process shares), screens are read from that file, which the
    bridge rewrites before each reply; otherwise they come in the reply.
    """

    def __init__(
        self,
        host: str,
        port: int,
        ram_count: int,
        timeout_s: float,
        screen_file: str | None = None,
        *,
        key: str,
    ) -> None:
        self.timeout_s = timeout_s
        self.ram_count = ram_count
        self._screen_map: mmap.mmap | None = None
        if screen_file is not None:
            try:
                with open(screen_file, "rb") as file:
                    self._screen_map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError) as exc:
                raise ConnectionLostError(
                    f"cannot map the instance's screen file {screen_file}: {exc}"
                ) from None
            if len(self._screen_map) < GD_BYTES + 1:
                raise ConnectionLostError(
                    f"the screen file {screen_file} has {len(self._screen_map)} bytes, "
                    f"fewer than {GD_BYTES + 1}"
                )
        self._screen_buffer = np.empty(GD_BYTES + 1, dtype=np.uint8)
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as exc:
            raise ConnectionLostError(
                f"cannot connect to the emulator at {host}:{port}: {exc}"
            ) from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock.sendall(key.encode())  # the bridge takes no other client
        except OSError as exc:
            self.sock.close()
            raise ConnectionLostError(
                f"cannot connect to the emulator at {host}:{port}: {exc}"
            ) from None
        # A blocking socket with kernel timeouts, so that MSG_WAITALL can wait for a
        # whole screen in one call: LuaSocket sends it in 8 KB pieces, and waking
        # up for each piece costs more than the copy.
        self.sock.settimeout(None)
        self._set_timeout(socket.SO_RCVTIMEO, timeout_s)
        self._set_timeout(socket.SO_SNDTIMEO, timeout_s)
        self._reply = bytearray(4096)  # a reply but a screen in it, usually
        self._sent_at = 0.0

    def _set_timeout(self, option: int, timeout_s: float) -> None:
        seconds = int(timeout_s)
        timeval = struct.pack("ll", seconds, int((timeout_s - seconds) * 1e6))
        self.sock.setsockopt(socket.SOL_SOCKET, option, timeval)

    def _recv_into(self, view: memoryview) -> None:
        received = 0
        while received < len(view):
            try:
                count = self.sock.recv_into(view[received:], 0, socket.MSG_WAITALL)
            except BlockingIOError:  # SO_RCVTIMEO expired
                raise TimeoutError from None
            if count == 0:
                raise ConnectionLostError(
                    "the emulator closed the connection", details={"closed": True}
                )
            received += count

    def _recv_at_least(self, have: int, wanted: int) -> int:
        """Read into the reply buffer until it holds ``wanted`` bytes; return how many it holds.

        A reply comes in one send from the bridge, so one ``recv`` usually gets it all.
        """
        while have < wanted:
            if wanted > len(self._reply):
                self._reply.extend(bytes(wanted - len(self._reply)))
            try:
                count = self.sock.recv_into(memoryview(self._reply)[have:])
            except BlockingIOError:  # SO_RCVTIMEO expired
                raise TimeoutError from None
            if count == 0:
                raise ConnectionLostError(
                    "the emulator closed the connection", details={"closed": True}
                )
            have += count
        return have

    def peer_closed(self) -> bool:
        """Whether the bridge has closed the connection (FCEUX quit or died) since the
        last reply; between requests nothing else can be waiting to be read."""
        try:
            return self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def request(self, command: bytes, argument: int = 0) -> BridgeReply:
        """Send one request and read its reply (``send`` then ``receive``)."""
        self.send(command, argument)
        return self.receive()

    def send(self, command: bytes, argument: int = 0) -> None:
        """Send one request; ``receive`` reads its reply.

        Raises:
            ConnectionLostError: when the connection is broken.
        """
        self._sent_at = time.monotonic()
        try:
            self.sock.sendall(command + _U32.pack(argument))
        except (TimeoutError, BlockingIOError):
            raise ConnectionLostError(
                f"the emulator took no request within {self.timeout_s:g} s: it hangs or is stopped"
            ) from None
        except OSError as exc:
            raise ConnectionLostError(
                f"the connection to the emulator broke: {exc}", details={"closed": True}
            ) from None

    def receive(self, screen_out: np.ndarray | None = None) -> BridgeReply:
        """Read the reply to the request sent last (its screen into ``screen_out`` if given).

        Raises:
            ConnectionLostError: when the instance closes or stays silent past the timeout.
            EnvError: when the game's Lua script failed (the message has its file and line).
        """
        # The timeout runs from the send: a session reads its instances' replies one
        # after another, and one that hung must not give the next ten more seconds.
        waited = time.monotonic() - self._sent_at
        shortened = waited > 0.05
        if shortened:
            self._set_timeout(socket.SO_RCVTIMEO, max(self.timeout_s - waited, 0.001))
        try:
            have = self._recv_at_least(0, 8)
            if shortened:  # it answers: the rest of the reply may take the usual time
                shortened = False
                self._set_timeout(socket.SO_RCVTIMEO, self.timeout_s)
            (header_bytes,) = _U32.unpack_from(self._reply)
            if header_bytes > MAX_HEADER_BYTES:
                raise ConnectionLostError(
                    f"the bridge sent a reply header of {header_bytes:,} bytes, over "
                    f"{MAX_HEADER_BYTES:,}: the game script returns too large an info (keep "
                    "it to a few values), or the stream is out of step"
                )
            screen_at = 4 + header_bytes + 4
            have = self._recv_at_least(have, screen_at)
            header = self._reply[4 : 4 + header_bytes].decode(errors="replace")
            (screen_bytes,) = _U32.unpack_from(self._reply, screen_at - 4)
            if screen_bytes and screen_bytes != GD_BYTES:
                raise EnvError(
                    f"the bridge sent a screen of {screen_bytes} bytes, not {GD_BYTES}: "
                    "is this an NES game in FCEUX?"
                )
            screen = None
            if screen_bytes and self._screen_map is None:
                # The screen comes in the reply: move what came with the header, read the rest.
                ram_at = screen_at + screen_bytes
                already = min(have, ram_at) - screen_at
                self._screen_buffer[:already] = np.frombuffer(
                    self._reply, np.uint8, already, screen_at
                )
                self._recv_into(self._screen_buffer.data[already:screen_bytes])
                leftover = max(0, have - ram_at)  # RAM bytes read with the screen
                self._reply[:leftover] = self._reply[ram_at:have]
                have, ram_at = leftover, 0
                screen = argb_to_rgb(self._screen_buffer, screen_out)
            else:
                ram_at = screen_at
                if screen_bytes:
                    screen = argb_to_rgb(self._screen_map, screen_out)  # type: ignore[arg-type]
            ram = None
            if self.ram_count:
                have = self._recv_at_least(have, ram_at + self.ram_count)
                ram = np.frombuffer(self._reply, np.uint8, self.ram_count, ram_at).copy()
        except (TimeoutError, BlockingIOError):
            raise ConnectionLostError(
                f"the emulator sent no reply within {self.timeout_s:g} s: it hangs or is stopped",
                details={"timed_out": True},
            ) from None
        except (OSError, ConnectionLostError) as exc:
            closed = isinstance(exc, OSError) or exc.details.get("closed") is True
            raise ConnectionLostError(
                f"the connection to the emulator broke: {exc}",
                details={"closed": closed},
            ) from None
        finally:
            if shortened:
                with contextlib.suppress(OSError):
                    self._set_timeout(socket.SO_RCVTIMEO, self.timeout_s)
        status, _, rest = header.partition(" ")
        if status != "ok":
            raise EnvError(f"the game's Lua script failed: {rest}", details={"lua_error": rest})
        try:
            reward, done, *pairs = rest.split(" ")
            info = {key: float(value) for key, _, value in (p.partition("=") for p in pairs)}
            return BridgeReply(float(reward), done == "1", info, screen, ram)
        except ValueError:  # the bridge itself broken (by its game script, say)
            raise EnvError(
                f"the emulator sent a reply that is not one: {header[:200]!r}",
                details={"bad_reply": True},
            ) from None

    def close(self) -> None:
        """Ask the instance to quit (it exits FCEUX) and close the socket."""
        try:
            self.sock.settimeout(1.0)
            self.sock.sendall(b"Q" + _U32.pack(0))
        except OSError:
            pass
        finally:
            self.sock.close()
            if self._screen_map is not None:
                self._screen_map.close()
                self._screen_map = None
