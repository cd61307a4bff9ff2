"""Benchmark: netgym against the designs it learned from, in one run.

Measures ALE/Pong-v5 steps/s with 8 envs through netgym (client, envapi, session
process, workers over loopback) against, in the same run and interleaved:

- Gymnasium's in-process ``AsyncVectorEnv`` with 8 envs (shared memory),
- a JSON-over-HTTP server in the openai/gym-http-api style (one env, one step
  per request, the observation as a JSON list),
- a raw-socket server in the unixpickle/gym-socket-api style (one env per
  message, length-prefixed raw frame bytes),

plus netgym's empty round trip (PING) p50 and p99. Prints medians over
``--rounds`` and the ratios against each baseline.

    python scripts/bench_envapi.py            # 5 rounds, about 3 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import free_ports  # noqa: E402

import netgym  # noqa: E402
from scripts.baselines import json_http, raw_socket  # noqa: E402

TARGETS = {
    "netgym / AsyncVectorEnv": 1.0,
    "netgym / JSON over HTTP": 300.0,
    "netgym / raw socket, one env per message": 1.5,
}
RTT_P50_TARGET_US = 150.0


def start_envapi() -> tuple[subprocess.Popen[bytes], str]:
    port, data_port = free_ports(2)
    env = {**os.environ, "NETGYM_PORT": str(port), "NETGYM_DATA_PORT": str(data_port)}
    env.pop("NETGYM_TOKEN", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "netgym_envapi", "--log-level", "warning"], env=env, cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            netgym.make_vec("CartPole-v1", 1, url=url).close()
            return process, url
        except netgym.NetgymError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise
            time.sleep(0.2)


def time_vector(envs: gym.vector.VectorEnv, steps: int, seed: int) -> float:
    """Steps/s of a vector env (each env step counts), random actions."""
    rng = np.random.default_rng(seed)
    n = envs.num_envs
    assert isinstance(envs.single_action_space, gym.spaces.Discrete)
    actions = rng.integers(0, int(envs.single_action_space.n), (steps + 20, n))
    envs.reset(seed=seed)
    for a in actions[:20]:
        envs.step(a)
    started = time.perf_counter()
    for a in actions[20:]:
        envs.step(a)
    return steps * n / (time.perf_counter() - started)


def time_single(env: Any, steps: int, seed: int, actions_n: int) -> float:
    """Steps/s of a one-env baseline client; it resets when an episode ends, as vector envs do."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, actions_n, steps + 5).tolist()
    env.reset(seed=seed)
    for a in actions[:5]:
        env.step(a)
    started = time.perf_counter()
    for a in actions[5:]:
        if env.step(a)[2]:
            env.reset()
    return steps / (time.perf_counter() - started)


def round_trips(ping: Callable[[], object], count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        ping()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--env-id", default="ALE/Pong-v5")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=500, help="vector steps per measurement")
    parser.add_argument("--single-steps", type=int, default=3000, help="raw-socket steps")
    parser.add_argument("--json-steps", type=int, default=15, help="JSON-over-HTTP steps")
    parser.add_argument("--pings", type=int, default=5000)
    parser.add_argument("--output", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    import ale_py

    gym.register_envs(ale_py)
    envapi, url = start_envapi()
    json_port, raw_port = free_ports(2)
    json_server, raw_server = json_http.launch(json_port), raw_socket.launch(raw_port)
    results: dict[str, list[float]] = {
        "netgym": [],
        "AsyncVectorEnv": [],
        "JSON over HTTP": [],
        "raw socket, one env per message": [],
    }
    rtt: list[float] = []
    try:
        remote = netgym.make_vec(args.env_id, args.num_envs, url=url)
        local = gym.vector.AsyncVectorEnv(
            [lambda: gym.make(args.env_id) for _ in range(args.num_envs)]
        )
        raw = raw_socket.RawSocketEnv("127.0.0.1", raw_port, args.env_id)
        slow = json_http.JsonHttpEnv(f"http://127.0.0.1:{json_port}", args.env_id)
        raw.reset(seed=0)
        slow.reset(seed=0)
        assert isinstance(remote.single_action_space, gym.spaces.Discrete)
        n_actions = int(remote.single_action_space.n)
        for i in range(args.rounds):
            results["netgym"].append(time_vector(remote, args.steps, seed=i))
            results["AsyncVectorEnv"].append(time_vector(local, args.steps, seed=i))
            results["raw socket, one env per message"].append(
                time_single(raw, args.single_steps, i, n_actions)
            )
            results["JSON over HTTP"].append(time_single(slow, args.json_steps, i, n_actions))
            rtt += round_trips(remote.ping, args.pings // args.rounds)
            print(
                f"round {i + 1}/{args.rounds}: "
                + ", ".join(f"{name} {values[-1]:,.0f}" for name, values in results.items()),
                flush=True,
            )
        raw_rtt = round_trips(raw.ping, 2000)
        for env in (remote, local, raw, slow):
            env.close()
    finally:
        for process in (envapi, json_server, raw_server):
            process.terminate()
            process.wait(15)

    medians = {name: statistics.median(values) for name, values in results.items()}
    p50, p99 = np.percentile(rtt, 50) * 1e6, np.percentile(rtt, 99) * 1e6
    print(
        f"\n{args.env_id}, {args.num_envs} envs for vector backends, "
        f"median of {args.rounds} rounds, "
        f"{os.cpu_count()} cores, loopback"
    )
    print(f"{'backend':<36}{'steps/s':>12}")
    for name, value in medians.items():
        print(f"{name:<36}{value:>12,.1f}")
    print(f"\n{'ratio':<44}{'got':>9}{'target':>9}")
    ratios = {
        "netgym / AsyncVectorEnv": medians["netgym"] / medians["AsyncVectorEnv"],
        "netgym / JSON over HTTP": medians["netgym"] / medians["JSON over HTTP"],
        "netgym / raw socket, one env per message": medians["netgym"]
        / medians["raw socket, one env per message"],
    }
    for name, value in ratios.items():
        mark = "ok" if value >= TARGETS[name] else "BELOW TARGET"
        print(f"{name:<44}{value:>8.2f}x{TARGETS[name]:>8.1f}x  {mark}")
    mark = "ok" if p50 <= RTT_P50_TARGET_US else "ABOVE TARGET"
    print(
        f"\nempty round trip (PING): netgym p50 {p50:.0f} us, p99 {p99:.0f} us (target p50 <= "
        f"{RTT_P50_TARGET_US:.0f} us) {mark}; raw-socket baseline p50 "
        f"{np.percentile(raw_rtt, 50) * 1e6:.0f} us"
    )
    if args.output:
        args.output.write_text(
            json.dumps(
                {
                    "medians": medians,
                    "ratios": ratios,
                    "rtt_us": {"p50": p50, "p99": p99},
                    "rounds": results,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
