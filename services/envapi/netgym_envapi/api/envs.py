"""GET /v1/envs and /v1/envs/{env_id}: what the service serves, with its spaces."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends

from netgym_envapi.api.deps import SessionsDep, require_token
from netgym_envapi.catalog import find_env, list_envs
from netgym_envapi.wrappers import available_wrappers

router = APIRouter(tags=["envs"], dependencies=[Depends(require_token)])


@router.get("/v1/envs")
async def get_envs() -> dict[str, Any]:
    """Every env id served, and the server-side wrappers a session may ask for."""
    # In threads: they may ask the emulator service, which must not stall the loop.
    entries = await asyncio.to_thread(list_envs)
    return {
        "envs": [{"env_id": e.env_id, "family": e.family} for e in entries],
        "wrappers": available_wrappers(),
    }


@router.get("/v1/envs/{env_id:path}")
async def get_env(env_id: str, sessions: SessionsDep) -> dict[str, Any]:
    """One env's spaces (with no wrappers), as specs from docs/protocol.md."""
    entry = await asyncio.to_thread(find_env, env_id)
    return {"family": entry.family, **await sessions.describe(env_id)}
