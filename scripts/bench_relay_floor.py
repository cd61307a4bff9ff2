"""Benchmark: the least that any relay process between a client and FCEUX costs here.

The whole path of ``bench_emulator.py`` puts one process (the envapi's
session) between the client and the emulators. This script measures the
floor of that design on this machine: a relay with none of netgym's
checks, errors or protocol, only what every relay must do, against FCEUX
driven straight through the bridge, in the same run:

- **lockstep relay**: the client sends every env's action in one message;
  the relay sends each instance its action, waits for every reply, converts
  each screen into memory it shares with the client, and answers; the
  client copies the screens out (what ``VectorEnv.step`` does);
- **async relay** (EnvPool-style, a batch of one): the client sends one
  env's action as soon as that env's result is in; the relay serves
  whichever socket is ready.

If even these stay below a target, no work on netgym's own code can reach
it on this machine. Replies carry no screen (it goes through the instance's
screen file) and nothing is checked: do not use this code for anything else.

    python scripts/bench_relay_floor.py     # about 2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import mmap
import multiprocessing
import os
import selectors
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import run_emulator  # noqa: E402

from netgym.emulator.bridge import SCREEN_SHAPE, argb_to_rgb  # noqa: E402
from scripts.bench_emulator import MANIFEST, MASKS, direct, lease_instance  # noqa: E402

SCREEN_BYTES = int(np.prod(SCREEN_SHAPE))
REQUEST = struct.Struct("<I")
MESSAGE = struct.Struct("<qq")  # env, action (client) or env, reply bytes (relay)


def _connect(address: tuple[str, int] | Any, key: str | None = None) -> socket.socket:
    sock = socket.create_connection(address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if key is not None:  # an emulator bridge's: the first bytes it takes a client by
        sock.sendall(key.encode())
    return sock


def relay(emulator_url: str, instances: int, mode: str, ports: Any, screens_path: str) -> None:
    """The relay process: lease instances, then serve one client until it leaves."""
    bridges, screen_files = [], []
    for _ in range(instances):
        instance = lease_instance(emulator_url)
        bridges.append(_connect((instance["host"], instance["port"]), instance["key"]))
        with open(instance["screen_file"], "rb") as file:
            screen_files.append(mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ))
    with open(screens_path, "r+b") as file:
        shared = mmap.mmap(file.fileno(), 0)
    screens = np.frombuffer(shared, np.uint8).reshape(instances, *SCREEN_SHAPE)
    reply = bytearray(4096)
    for bridge in bridges:
        bridge.sendall(b"R" + REQUEST.pack(0))
        bridge.recv_into(reply)
    server = socket.create_server(("127.0.0.1", 0))
    ports.put(server.getsockname()[1])
    client, _ = server.accept()
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode == "lockstep":
        request = bytearray(8 * instances)
        while client.recv_into(request, len(request), socket.MSG_WAITALL) == len(request):
            for bridge, action in zip(
                bridges, np.frombuffer(request, np.int64).tolist(), strict=True
            ):
                bridge.send(b"S" + REQUEST.pack(MASKS[action]))
            for env, bridge in enumerate(bridges):
                bridge.recv_into(reply)
                argb_to_rgb(screen_files[env], screens[env])
            client.send(b"ok")
        return
    selector = selectors.DefaultSelector()
    selector.register(client, selectors.EVENT_READ, -1)
    for env, bridge in enumerate(bridges):
        selector.register(bridge, selectors.EVENT_READ, env)
    pending = b""
    while True:
        for key, _ in selector.select():
            if key.data >= 0:
                count = bridges[key.data].recv_into(reply)
                argb_to_rgb(screen_files[key.data], screens[key.data])
                client.send(MESSAGE.pack(key.data, count))
                continue
            try:
                data = client.recv(4096)
            except ConnectionResetError:  # the client left without reading every reply
                return
            if not data:
                return
            pending += data
            while len(pending) >= MESSAGE.size:
                env, action = MESSAGE.unpack_from(pending)
                pending = pending[MESSAGE.size :]
                bridges[env].send(b"S" + REQUEST.pack(MASKS[action]))


def through_relay(emulator_url: str, instances: int, mode: str, steps: int, seed: int) -> float:
    """Steps/s (all instances together) of a client of a relay process."""
    with tempfile.NamedTemporaryFile(dir="/dev/shm") as screens_file:
        screens_file.truncate(instances * SCREEN_BYTES)
        ports: multiprocessing.Queue[int] = multiprocessing.Queue()
        process = multiprocessing.Process(
            target=relay, args=(emulator_url, instances, mode, ports, screens_file.name)
        )
        process.start()
        try:
            sock = _connect(("127.0.0.1", ports.get(timeout=60)))
            shared = mmap.mmap(screens_file.fileno(), 0)
            screens = np.frombuffer(shared, np.uint8).reshape(instances, *SCREEN_SHAPE)
            actions = np.random.default_rng(seed).integers(0, 3, (steps + 10) * instances).tolist()
            client = _lockstep_client if mode == "lockstep" else _async_client
            rate = client(sock, screens, actions, instances, steps)
            sock.close()
            process.join(10)
        finally:
            process.kill()
    return rate


def _lockstep_client(
    sock: socket.socket, screens: np.ndarray, actions: list[int], instances: int, steps: int
) -> float:
    answer = bytearray(2)
    started = 0.0
    for step in range(steps + 10):
        if step == 10:
            started = time.perf_counter()
        sock.sendall(
            struct.pack(f"<{instances}q", *actions[step * instances : (step + 1) * instances])
        )
        sock.recv_into(answer, 2, socket.MSG_WAITALL)
        screens.copy()
    return steps * instances / (time.perf_counter() - started)


def _async_client(
    sock: socket.socket, screens: np.ndarray, actions: list[int], instances: int, steps: int
) -> float:
    for env in range(instances):
        sock.sendall(MESSAGE.pack(env, actions[env]))
    pending, done, started = b"", 0, 0.0
    warmup = 10 * instances
    total = steps * instances + warmup
    while done < total:
        while len(pending) < MESSAGE.size:
            pending += sock.recv(4096)
        env, _ = MESSAGE.unpack_from(pending)
        pending = pending[MESSAGE.size :]
        screens[env].copy()
        done += 1
        if done == warmup:
            started = time.perf_counter()
        if done < total:
            sock.sendall(MESSAGE.pack(env, actions[done % len(actions)]))
    return steps * instances / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1500, help="steps per instance per round")
    args = parser.parse_args()
    arms = [("lockstep relay", 1), ("lockstep relay", 2), ("async relay", 2)]
    ratios: dict[str, list[float]] = {}
    rates: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        games = Path(tmp) / "games"
        (games / "bench").mkdir(parents=True)
        (games / "bench" / "game.toml").write_text(MANIFEST)
        with run_emulator(Path(tmp), games) as (emulator_url, _):
            for round_index in range(args.rounds):
                line = []
                for name, instances in arms:
                    mode = "lockstep" if name.startswith("lockstep") else "async"
                    floor = through_relay(emulator_url, instances, mode, args.steps, round_index)
                    bare = direct(emulator_url, instances, args.steps, round_index)
                    label = f"{name}, {instances}"
                    ratios.setdefault(label, []).append(floor / bare)
                    rates.setdefault(label, []).append(floor)
                    line.append(f"{label}: {floor:,.0f} vs direct {bare:,.0f}")
                print(f"round {round_index + 1}/{args.rounds}: " + "; ".join(line), flush=True)
    print(f"\nmedian of {args.rounds} rounds, {os.cpu_count()} cores, screen every step")
    for label, values in ratios.items():
        print(
            f"{label + ' instance(s)':<30} {statistics.median(rates[label]):>7,.0f} steps/s, "
            f"{statistics.median(values):.2f}x the direct bridge"
        )


if __name__ == "__main__":
    main()
