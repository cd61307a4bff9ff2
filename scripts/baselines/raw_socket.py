"""Baseline: raw TCP, length-prefixed binary frames, one env per message.

This is the design of unixpickle/gym-socket-api, rewritten here in its style (no
code taken from it): the server forks one process per accepted client, each
process owns one env, and the observation travels as its raw bytes.

Every message, either way, is a 5-byte header followed by ``length`` payload
bytes::

    header = u32 length (little endian) + u8 type

Requests and replies (the reply echoes the request's type, or is ERROR):

    MAKE   env_id (utf-8)        -> JSON {"shape": [...], "dtype": "uint8"}
    RESET  empty, or i64 seed    -> observation bytes
    STEP   i32 action            -> observation bytes + f64 reward + u8 flags
    PING   empty                 -> empty (no env work at all)
    ERROR  (reply only)          -> utf-8 message

``flags`` has bit 0 set for ``terminated`` and bit 1 for ``truncated``. A client
closing its connection ends its server process.

Run it with ``python -m scripts.baselines.raw_socket --port N`` from the repo
root, or from a benchmark with :func:`launch` / :func:`stop`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from types import FrameType
from typing import Any

import gymnasium
import numpy as np

from scripts.baselines import processes
from scripts.baselines.processes import HOST, stop

__all__ = ["launch", "stop"]

HEADER = struct.Struct("<IB")
ACTION = struct.Struct("<i")
SEED = struct.Struct("<q")
STEP_TAIL = struct.Struct("<dB")

MAKE, RESET, STEP, PING, ERROR = 1, 2, 3, 4, 255
MAX_REQUEST = 1 << 16


def _recv_exact(sock: socket.socket, view: memoryview) -> bool:
    """Fill ``view`` from ``sock``.

    Returns:
        False if the peer closed the connection before sending anything,
        True once ``view`` is full.

    Raises:
        ConnectionError: The peer closed the connection part way through.
    """
    got, size = 0, len(view)
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            if got == 0:
                return False
            raise ConnectionError("peer closed the connection mid-message")
        got += n
    return True


class _Session:
    """Server side of one connection: one env, preallocated buffers."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.header = bytearray(HEADER.size)
        self.request = bytearray(256)
        self.env: gymnasium.Env[Any, Any] | None = None
        self.reply = bytearray(HEADER.size)
        self.obs_view: np.ndarray[Any, Any] | None = None
        self.obs_nbytes = 0

    def send(self, kind: int, payload: bytes = b"") -> None:
        self.sock.sendall(HEADER.pack(len(payload), kind) + payload)

    def make(self, env_id: str) -> None:
        import ale_py

        gymnasium.register_envs(ale_py)
        if self.env is not None:
            self.env.close()
            self.env = None
        env = gymnasium.make(env_id)
        space = env.observation_space
        if space.shape is None or space.dtype is None:
            raise ValueError(f"{env_id}: observation space {space} has no fixed shape")
        dtype = np.dtype(space.dtype)
        self.obs_nbytes = int(np.prod(space.shape)) * dtype.itemsize
        # One reply buffer for the whole session: header + obs + reward/flags.
        self.reply = bytearray(HEADER.size + self.obs_nbytes + STEP_TAIL.size)
        self.obs_view = np.frombuffer(
            self.reply, dtype=dtype, count=self.obs_nbytes // dtype.itemsize, offset=HEADER.size
        ).reshape(space.shape)
        self.env = env
        self.send(MAKE, json.dumps({"shape": list(space.shape), "dtype": str(dtype)}).encode())

    def send_obs(self, kind: int, obs: Any, tail: tuple[float, int] | None) -> None:
        assert self.obs_view is not None
        np.copyto(self.obs_view, obs, casting="unsafe")
        size = self.obs_nbytes
        if tail is not None:
            STEP_TAIL.pack_into(self.reply, HEADER.size + size, *tail)
            size += STEP_TAIL.size
        HEADER.pack_into(self.reply, 0, size, kind)
        self.sock.sendall(memoryview(self.reply)[: HEADER.size + size])

    def handle(self, kind: int, payload: memoryview) -> None:
        if kind == PING:
            self.send(PING)
            return
        if kind == MAKE:
            self.make(bytes(payload).decode())
            return
        if self.env is None:
            raise RuntimeError("send MAKE before RESET or STEP")
        if kind == RESET:
            seed = SEED.unpack(payload)[0] if len(payload) == SEED.size else None
            obs, _info = self.env.reset(seed=seed)
            self.send_obs(RESET, obs, None)
        elif kind == STEP:
            (action,) = ACTION.unpack(payload)
            obs, reward, terminated, truncated, _info = self.env.step(action)
            flags = (1 if terminated else 0) | (2 if truncated else 0)
            self.send_obs(STEP, obs, (float(reward), flags))
        else:
            raise ValueError(f"unknown message type {kind}")

    def run(self) -> None:
        """Answer requests until the client disconnects."""
        header = memoryview(self.header)
        try:
            while _recv_exact(self.sock, header):
                length, kind = HEADER.unpack(self.header)
                if length > MAX_REQUEST:
                    raise ValueError(f"request of {length} bytes is too large")
                if length > len(self.request):
                    self.request = bytearray(length)
                payload = memoryview(self.request)[:length]
                if length and not _recv_exact(self.sock, payload):
                    raise ConnectionError("peer closed the connection mid-message")
                try:
                    self.handle(kind, payload)
                except ConnectionError:
                    raise  # the socket failed: no error reply can be sent
                except Exception as exc:
                    self.send(ERROR, f"{type(exc).__name__}: {exc}".encode())
        except OSError:
            pass  # the client went away: nothing left to answer
        finally:
            if self.env is not None:
                self.env.close()
            self.sock.close()


def _child(conn: socket.socket) -> None:
    """Body of a forked per-client process; never returns."""
    code = 0
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        _Session(conn).run()
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(port: int, host: str = HOST) -> None:
    """Accept clients forever, forking one process per client.

    SIGTERM or SIGINT stops the server and terminates its client processes.

    Args:
        port: TCP port to listen on.
        host: Address to bind.
    """
    import ale_py  # imported once here, so forked children start warm

    gymnasium.register_envs(ale_py)
    children: set[int] = set()

    def reap(_signum: int, _frame: FrameType | None) -> None:
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            children.discard(pid)

    def terminate(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGCHLD, reap)
    signal.signal(signal.SIGTERM, terminate)
    listener = socket.create_server((host, port), backlog=128)
    try:
        while True:
            conn, _addr = listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Block SIGCHLD so a child that exits at once is reaped after it is recorded.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
            try:
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    _child(conn)
                children.add(pid)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            conn.close()
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


class RawSocketEnv:
    """Client for one env on a :func:`serve` server (one connection, one env).

    ``step`` follows the old gym convention of the original design and returns
    ``(obs, reward, done, info)``, with ``info["terminated"]`` and
    ``info["truncated"]`` kept apart. Observations are copied out of the
    receive buffer, so they stay valid after the next call.

    Args:
        host: Server address.
        port: Server port.
        env_id: Gymnasium id to create on the server, e.g. ``"ALE/Pong-v5"``.
        timeout: Seconds to wait for any one reply.
    """

    def __init__(self, host: str, port: int, env_id: str, timeout: float = 60.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray(4096)
        self._step_request = bytearray(HEADER.size + ACTION.size)
        HEADER.pack_into(self._step_request, 0, ACTION.size, STEP)
        self._reset_request = HEADER.pack(0, RESET)
        self._ping_request = HEADER.pack(0, PING)
        name = env_id.encode()
        meta = json.loads(bytes(self._call(HEADER.pack(len(name), MAKE) + name, MAKE)))
        self.shape: tuple[int, ...] = tuple(meta["shape"])
        self.dtype: np.dtype[Any] = np.dtype(meta["dtype"])
        self._count = int(np.prod(self.shape))
        self._obs_nbytes = self._count * self.dtype.itemsize
        need = HEADER.size + self._obs_nbytes + STEP_TAIL.size
        if need > len(self._buf):
            self._buf = bytearray(need)

    def _call(self, request: bytes | bytearray, kind: int) -> memoryview:
        """Send one request and return the reply's payload (a view of ``_buf``)."""
        self._sock.sendall(request)
        view = memoryview(self._buf)
        got = 0
        # Only one reply is ever in flight, so reading past the header is safe.
        while got < HEADER.size:
            n = self._sock.recv_into(view[got:])
            if n == 0:
                raise ConnectionError("server closed the connection")
            got += n
        length, reply_kind = HEADER.unpack_from(self._buf, 0)
        total = HEADER.size + length
        if total > len(self._buf):
            grown = bytearray(total)
            grown[:got] = view[:got]
            self._buf = grown
            view = memoryview(self._buf)
        while got < total:
            n = self._sock.recv_into(view[got:total])
            if n == 0:
                raise ConnectionError("server closed the connection")
            got += n
        payload = view[HEADER.size : total]
        if reply_kind == ERROR:
            raise RuntimeError(f"server: {bytes(payload).decode(errors='replace')}")
        if reply_kind != kind:
            raise RuntimeError(f"expected reply type {kind}, got {reply_kind}")
        return payload

    def _obs(self) -> np.ndarray[Any, Any]:
        obs = np.frombuffer(self._buf, dtype=self.dtype, count=self._count, offset=HEADER.size)
        return obs.reshape(self.shape).copy()

    def reset(self, seed: int | None = None) -> np.ndarray[Any, Any]:
        """Reset the env.

        Args:
            seed: Optional seed passed to ``env.reset``.

        Returns:
            The first observation.
        """
        if seed is None:
            request: bytes = self._reset_request
        else:
            request = HEADER.pack(SEED.size, RESET) + SEED.pack(seed)
        self._call(request, RESET)
        return self._obs()

    def step(self, action: int) -> tuple[np.ndarray[Any, Any], float, bool, dict[str, Any]]:
        """Take one step.

        Args:
            action: A discrete action.

        Returns:
            ``(obs, reward, done, info)``.
        """
        ACTION.pack_into(self._step_request, HEADER.size, int(action))
        self._call(self._step_request, STEP)
        reward, flags = STEP_TAIL.unpack_from(self._buf, HEADER.size + self._obs_nbytes)
        terminated, truncated = bool(flags & 1), bool(flags & 2)
        info = {"terminated": terminated, "truncated": truncated}
        return self._obs(), reward, terminated or truncated, info

    def ping(self) -> float:
        """Make one empty round trip (the server does no env work).

        Returns:
            The round-trip time in seconds.
        """
        start = time.perf_counter()
        self._call(self._ping_request, PING)
        return time.perf_counter() - start

    def close(self) -> None:
        """Close the connection; the server's process for it exits."""
        self._sock.close()

    def __enter__(self) -> RawSocketEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_ready(port: int, timeout: float = 30.0) -> None:
    """Block until a server on ``port`` answers a PING (TimeoutError after ``timeout`` s)."""

    def answers() -> bool:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.sendall(HEADER.pack(0, PING))
            return sock.recv(HEADER.size) == HEADER.pack(0, PING)

    processes.poll_until_ready(answers, f"raw_socket server on port {port}", timeout, (OSError,))


def launch(port: int, timeout: float = 30.0) -> subprocess.Popen[bytes]:
    """Start ``python -m scripts.baselines.raw_socket --port N`` and wait until ready."""
    return processes.launch("scripts.baselines.raw_socket", port, wait_ready, timeout)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m scripts.baselines.raw_socket --port N``."""
    parser = argparse.ArgumentParser(description="raw TCP env server (gym-socket-api style)")
    parser.add_argument("--port", type=int, default=9000)
    serve(parser.parse_args(argv).port)


if __name__ == "__main__":
    main()
