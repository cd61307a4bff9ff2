"""netgym: Gymnasium environments served over the network.

The client library: ``pip install /path/to/netgym`` into training code, then::

    import netgym
    env = netgym.make("CartPole-v1", url="http://gpu-box:8000")
    envs = netgym.make_vec("ALE/Pong-v5", num_envs=8, wrappers=["atari"])

It needs only numpy and gymnasium; the services' dependencies stay on the
server. ``netgym.sb3`` adapts a remote vector env to stable-baselines3.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from netgym.client.arguments import server_address
from netgym.client.env import RemoteEnv
from netgym.client.rest import RestClient
from netgym.client.vector import RemoteVectorEnv
from netgym.errors import NetgymError


def make(env_id: str, **kwargs: Any) -> RemoteEnv:
    """One remote env with the ``gymnasium.Env`` API; see ``RemoteVectorEnv`` for the arguments."""
    return RemoteEnv(env_id, **kwargs)


def make_vec(env_id: str, num_envs: int = 1, **kwargs: Any) -> RemoteVectorEnv:
    """``num_envs`` remote envs as one ``gymnasium.vector.VectorEnv``, stepped as a batch."""
    return RemoteVectorEnv(env_id, num_envs, **kwargs)


def list_envs(url: str | None = None, token: str | None = None) -> list[str]:
    """The ids of every env the envapi serves (``GET /v1/envs``), NES games included.

    ``url`` and ``token`` default to ``$NETGYM_URL`` and ``$NETGYM_TOKEN``, as for ``make``.
    """
    client = RestClient(*server_address(url, token), 60.0)
    reply = client.call("GET", "/v1/envs", expect=("envs",))
    return [entry["env_id"] for entry in reply["envs"]]


def describe_env(
    env_id: str, url: str | None = None, token: str | None = None, timeout_s: float = 60.0
) -> dict[str, Any]:
    """What the envapi says of one env (``GET /v1/envs/{env_id}``): its spaces as specs,
    episode limits, ``action_meanings`` and, for an NES game, ``env_revision``.

    ``url`` and ``token`` default to ``$NETGYM_URL`` and ``$NETGYM_TOKEN``, as for ``make``.
    """
    reply: dict[str, Any] = RestClient(*server_address(url, token), timeout_s).call(
        "GET",
        f"/v1/envs/{urllib.parse.quote(env_id, safe='/')}",  # an id may hold "?", "#", " "
        expect=("env_id", "observation_space", "action_space"),
    )
    return reply


__all__ = [
    "NetgymError",
    "RemoteEnv",
    "RemoteVectorEnv",
    "describe_env",
    "list_envs",
    "make",
    "make_vec",
]
