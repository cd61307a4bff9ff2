"""Baseline: JSON over HTTP, one env per instance and one step per request.

This is the design of openai/gym-http-api, rewritten here in its style (no code
taken from it): a REST resource per env instance, and every observation sent as
a nested JSON list. FastAPI's ``jsonable_encoder`` walks that list element by
element, which is the realistic cost of "JSON frames" the benchmark measures.

Routes:
    GET  /v1/envs/                            -> {"all_envs": {instance_id: env_id}}
    POST /v1/envs/               {"env_id"}   -> {"instance_id"}
    GET  /v1/envs/{id}/observation_space/     -> {"shape", "dtype"}
    POST /v1/envs/{id}/reset/    {"seed"}?    -> {"observation"}
    POST /v1/envs/{id}/step/     {"action"}   -> {"observation", "reward", "done", "info"}
    POST /v1/envs/{id}/close/                 -> {}

Run it with ``python -m scripts.baselines.json_http --port N`` from the repo root,
or from a benchmark with :func:`launch` / :func:`stop`.
"""

from __future__ import annotations

import argparse
import subprocess
import uuid
from typing import Any

import gymnasium
import httpx
import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from scripts.baselines import processes
from scripts.baselines.processes import HOST, stop

__all__ = ["launch", "stop"]


def make_env(env_id: str) -> gymnasium.Env[Any, Any]:
    """Create one gymnasium env, with the ALE envs registered.

    Args:
        env_id: A registered gymnasium id, e.g. ``"ALE/Pong-v5"``.

    Returns:
        The new env (not yet reset).
    """
    import ale_py

    gymnasium.register_envs(ale_py)
    return gymnasium.make(env_id)


class CreateRequest(BaseModel):
    """Body of ``POST /v1/envs/``."""

    env_id: str


class ResetRequest(BaseModel):
    """Optional body of ``POST /v1/envs/{id}/reset/``."""

    seed: int | None = None


class StepRequest(BaseModel):
    """Body of ``POST /v1/envs/{id}/step/``."""

    action: int


def create_app() -> FastAPI:
    """Build the FastAPI app holding its own table of env instances.

    Every route sets ``response_model=None``: the returned dict then goes through
    ``jsonable_encoder``, as for an endpoint written without a return annotation
    (the usual case, and what FACTS.md measured). Without it FastAPI would build a
    response model from the ``dict[str, Any]`` annotation and serialise with
    pydantic-core instead, about 4x faster for Pong (still JSON, still slow).

    Returns:
        The app, ready for uvicorn.
    """
    app = FastAPI(title="json-http baseline")
    envs: dict[str, tuple[str, gymnasium.Env[Any, Any]]] = {}

    def lookup(instance_id: str) -> gymnasium.Env[Any, Any]:
        try:
            return envs[instance_id][1]
        except KeyError:
            raise HTTPException(404, f"no instance {instance_id!r}") from None

    @app.get("/v1/envs/", response_model=None)
    def list_envs() -> dict[str, Any]:
        return {"all_envs": {key: env_id for key, (env_id, _) in envs.items()}}

    @app.post("/v1/envs/", response_model=None)
    def create(body: CreateRequest) -> dict[str, Any]:
        try:
            env = make_env(body.env_id)
        except Exception as exc:
            raise HTTPException(400, f"cannot make {body.env_id!r}: {exc}") from exc
        instance_id = uuid.uuid4().hex[:8]
        envs[instance_id] = (body.env_id, env)
        return {"instance_id": instance_id}

    @app.get("/v1/envs/{instance_id}/observation_space/", response_model=None)
    def observation_space(instance_id: str) -> dict[str, Any]:
        space = lookup(instance_id).observation_space
        return {"shape": list(space.shape or ()), "dtype": str(space.dtype)}

    @app.post("/v1/envs/{instance_id}/reset/", response_model=None)
    def reset(instance_id: str, body: ResetRequest | None = None) -> dict[str, Any]:
        seed = body.seed if body is not None else None
        obs, _info = lookup(instance_id).reset(seed=seed)
        # A nested list in a plain dict: FastAPI encodes it value by value.
        return {"observation": np.asarray(obs).tolist()}

    @app.post("/v1/envs/{instance_id}/step/", response_model=None)
    def step(instance_id: str, body: StepRequest) -> dict[str, Any]:
        obs, reward, terminated, truncated, _info = lookup(instance_id).step(body.action)
        return {
            "observation": np.asarray(obs).tolist(),
            "reward": float(reward),
            "done": bool(terminated or truncated),
            "info": {"terminated": bool(terminated), "truncated": bool(truncated)},
        }

    @app.post("/v1/envs/{instance_id}/close/", response_model=None)
    def close(instance_id: str) -> dict[str, Any]:
        lookup(instance_id).close()
        del envs[instance_id]
        return {}

    return app


app = create_app()


class JsonHttpEnv:
    """Client for one env instance on a :func:`serve` server.

    ``step`` follows the old gym convention of the original design and returns
    ``(obs, reward, done, info)``, with ``info["terminated"]`` and
    ``info["truncated"]`` kept apart.

    Args:
        base_url: Server address, e.g. ``"http://127.0.0.1:8000"``.
        env_id: Gymnasium id to create on the server.
        timeout: Seconds to wait for any one request.
    """

    def __init__(self, base_url: str, env_id: str, timeout: float = 60.0) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout)
        created = self._post("/v1/envs/", {"env_id": env_id})
        self.instance_id: str = created["instance_id"]
        space = self._http.get(f"/v1/envs/{self.instance_id}/observation_space/")
        space.raise_for_status()
        self.shape: tuple[int, ...] = tuple(space.json()["shape"])
        self.dtype: np.dtype[Any] = np.dtype(space.json()["dtype"])

    def _post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self._http.post(path, json=body)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def _decode(self, observation: list[Any]) -> np.ndarray[Any, Any]:
        return np.asarray(observation, dtype=self.dtype)

    def reset(self, seed: int | None = None) -> np.ndarray[Any, Any]:
        """Reset the env.

        Args:
            seed: Optional seed passed to ``env.reset``.

        Returns:
            The first observation (``np.uint8`` for Atari).
        """
        reply = self._post(f"/v1/envs/{self.instance_id}/reset/", {"seed": seed})
        return self._decode(reply["observation"])

    def step(self, action: int) -> tuple[np.ndarray[Any, Any], float, bool, dict[str, Any]]:
        """Take one step.

        Args:
            action: A discrete action.

        Returns:
            ``(obs, reward, done, info)``.
        """
        reply = self._post(f"/v1/envs/{self.instance_id}/step/", {"action": int(action)})
        obs = self._decode(reply["observation"])
        return obs, float(reply["reward"]), bool(reply["done"]), reply["info"]

    def close(self) -> None:
        """Close the env on the server (best effort) and the HTTP connection."""
        try:
            self._post(f"/v1/envs/{self.instance_id}/close/")
        except httpx.HTTPError:
            pass
        finally:
            self._http.close()

    def __enter__(self) -> JsonHttpEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(port: int) -> None:
    """Serve the app on 127.0.0.1 until the process is stopped.

    Args:
        port: TCP port to listen on.
    """
    import uvicorn

    uvicorn.run(app, host=HOST, port=port, log_level="warning")


def wait_ready(port: int, timeout: float = 30.0) -> None:
    """Block until ``GET /v1/envs/`` answers on ``port`` (TimeoutError after ``timeout`` s)."""

    def answers() -> bool:
        return httpx.get(f"http://{HOST}:{port}/v1/envs/", timeout=1.0).status_code == 200

    processes.poll_until_ready(
        answers, f"json_http server on port {port}", timeout, (httpx.TransportError,)
    )


def launch(port: int, timeout: float = 30.0) -> subprocess.Popen[bytes]:
    """Start ``python -m scripts.baselines.json_http --port N`` and wait until ready."""
    return processes.launch("scripts.baselines.json_http", port, wait_ready, timeout)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m scripts.baselines.json_http --port N``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8000)
    serve(parser.parse_args(argv).port)


if __name__ == "__main__":
    main()
