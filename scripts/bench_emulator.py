"""Benchmark: plugged-in NES games through the whole path against the bare bridge.

In one run, interleaved round by round, with the screen every step and one
frame per step:

- **direct bridge**: FCEUX driven straight through netgym's Lua bridge by
  ``BridgeConnection`` (one process per instance, instances leased from the
  emulator service), the fastest a client could talk to FCEUX;
- **whole path**: ``netgym.make_vec`` through the envapi, whose session steps
  the instances through the same bridge;
- for reference, with 2 instances, **direct bridge, lockstep**: one process
  steps both instances through the bridge as a vector env does (send every
  action, then read every reply into one array, and copy it out), so the
  ratio to it shows what the path itself costs, apart from lockstep.

Both with 1 and with 2 instances; prints steps/s (all instances together),
the medians and the ratios. The targets are against the direct bridge.

    python scripts/bench_emulator.py        # about 2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import run_emulator, run_envapi  # noqa: E402

import netgym  # noqa: E402
from netgym.client.rest import EMULATOR, RestClient, emulator_token  # noqa: E402
from netgym.emulator.bridge import SCREEN_SHAPE, BridgeConnection  # noqa: E402
from netgym.emulator.env import script_timeout_s  # noqa: E402

GAME = "BenchPong"
MANIFEST = f"""\
name = "{GAME}"
description = "Escape from Pong, one frame per step, for benchmarks"
[rom]
file = "/usr/share/nes/efp.nes"
[script]
file = "{ROOT / "games" / "efp" / "game.lua"}"
[actions]
combos = [ {{ name = "noop", buttons = [] }}, {{ name = "up", buttons = ["up"] }},
           {{ name = "down", buttons = ["down"] }} ]
frames_per_step = 1
[observation]
screen = true
[start]
buttons = [ {{ wait = 30 }}, {{ press = ["start"], frames = 1 }}, {{ wait = 30 }} ]
"""
MASKS = [0, 16, 32]
TIMEOUT_S = 30.0  # the direct bridge's wait for a reply


def lease_instance(emulator_url: str) -> dict[str, Any]:
    """An instance of the benchmark's game, its screens in a shared file, its script
    under a time limit (as ``EmulatorEnv`` asks)."""
    rest = RestClient(emulator_url, emulator_token(), service=EMULATOR)
    instance: dict[str, Any] = rest.call(
        "POST",
        "/v1/instances",
        {"game": GAME, "screen_file": True, "script_timeout_s": script_timeout_s(TIMEOUT_S)},
    )
    return instance


def give_back(emulator_url: str, instance: dict[str, Any]) -> None:
    rest = RestClient(emulator_url, emulator_token(), service=EMULATOR)
    rest.call("DELETE", f"/v1/instances/{instance['instance_id']}")


def direct_worker(emulator_url: str, steps: int, seed: int, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Lease an instance and step it straight through the bridge; report steps/s."""
    instance = lease_instance(emulator_url)
    bridge = BridgeConnection(
        instance["host"],
        instance["port"],
        0,
        TIMEOUT_S,
        instance["screen_file"],
        key=instance["key"],
    )
    actions = np.random.default_rng(seed).integers(0, 3, steps + 10)
    bridge.request(b"R", 0)
    for a in actions[:10]:
        bridge.request(b"S", MASKS[a])
    started = time.perf_counter()
    for a in actions[10:]:
        bridge.request(b"S", MASKS[a])
    results.put(steps / (time.perf_counter() - started))
    bridge.close()
    give_back(emulator_url, instance)


def direct(emulator_url: str, instances: int, steps: int, seed: int) -> float:
    results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    workers = [
        multiprocessing.Process(target=direct_worker, args=(emulator_url, steps, seed + i, results))
        for i in range(instances)
    ]
    for worker in workers:
        worker.start()
    rates = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join()
    return float(sum(rates))


def direct_lockstep(emulator_url: str, instances: int, steps: int, seed: int) -> float:
    """Step several instances from this process in lockstep, as a vector env does."""
    leases = [lease_instance(emulator_url) for _ in range(instances)]
    bridges = [
        BridgeConnection(
            lease["host"], lease["port"], 0, TIMEOUT_S, lease["screen_file"], key=lease["key"]
        )
        for lease in leases
    ]
    screens = np.empty((instances, *SCREEN_SHAPE), dtype=np.uint8)
    actions = np.random.default_rng(seed).integers(0, 3, (steps + 10, instances))

    def step(masks: list[int]) -> np.ndarray:
        for bridge, mask in zip(bridges, masks, strict=True):
            bridge.send(b"S", mask)
        for index, bridge in enumerate(bridges):
            bridge.receive(screens[index])
        return screens.copy()

    for bridge in bridges:
        bridge.request(b"R", 0)
    for row in actions[:10]:
        step([MASKS[a] for a in row])
    started = time.perf_counter()
    for row in actions[10:]:
        step([MASKS[a] for a in row])
    rate = steps * instances / (time.perf_counter() - started)
    for bridge, lease in zip(bridges, leases, strict=True):
        bridge.close()
        give_back(emulator_url, lease)
    return rate


def whole_path(envs: netgym.RemoteVectorEnv, steps: int, seed: int) -> float:
    actions = np.random.default_rng(seed).integers(0, 3, (steps + 10, envs.num_envs))
    envs.reset(seed=seed)
    for a in actions[:10]:
        envs.step(a)
    started = time.perf_counter()
    for a in actions[10:]:
        envs.step(a)
    return steps * envs.num_envs / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1500, help="steps per instance per round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        games = Path(tmp) / "games"
        (games / "bench").mkdir(parents=True)
        (games / "bench" / "game.toml").write_text(MANIFEST)
        with (
            run_emulator(Path(tmp), games) as (emulator_url, _),
            run_envapi(Path(tmp), token=None, emulator_url=emulator_url) as envapi,
        ):
            results: dict[str, list[float]] = {}
            remote = {n: netgym.make_vec(f"netgym/{GAME}-v0", n, url=envapi.url) for n in (1, 2)}
            for i in range(args.rounds):
                for n in (1, 2):
                    results.setdefault(f"direct bridge, {n}", []).append(
                        direct(emulator_url, n, args.steps, seed=i)
                    )
                    results.setdefault(f"whole path, {n}", []).append(
                        whole_path(remote[n], args.steps, seed=i)
                    )
                results.setdefault("direct bridge, lockstep, 2", []).append(
                    direct_lockstep(emulator_url, 2, args.steps, seed=i)
                )
                print(
                    f"round {i + 1}/{args.rounds}: "
                    + ", ".join(f"{name} {values[-1]:,.0f}" for name, values in results.items()),
                    flush=True,
                )
            for envs in remote.values():
                envs.close()
    medians = {name: statistics.median(values) for name, values in results.items()}
    print(
        f"\nEscape from Pong, screen every step, 1 frame per step, median of {args.rounds} "
        f"rounds, {os.cpu_count()} cores (steps/s, all instances together)"
    )
    for name, value in medians.items():
        print(f"{name + ' instance(s)':<40}{value:>10,.0f}")
    for n in (1, 2):
        ratio = medians[f"whole path, {n}"] / medians[f"direct bridge, {n}"]
        mark = "ok" if ratio >= 0.85 else "BELOW TARGET"
        print(f"whole path / direct bridge, {n} instance(s): {ratio:.2f}x (target >= 0.85x) {mark}")
    lockstep = medians["whole path, 2"] / medians["direct bridge, lockstep, 2"]
    print(f"whole path / direct bridge in lockstep, 2 instance(s): {lockstep:.2f}x (for reference)")
    two = medians["whole path, 2"]
    print(
        f"whole path, 2 instances: {two:,.0f} steps/s (target >= 1,500) "
        f"{'ok' if two >= 1500 else 'BELOW TARGET'}"
    )


if __name__ == "__main__":
    main()
