"""/v1/sessions: open, list, inspect and close sessions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from netgym.errors import InvalidRequestError, ProtocolError
from netgym.protocol.values import value_from_json
from netgym_envapi.api.deps import DataPortDep, SessionsDep, SettingsDep, require_token
from netgym_envapi.sessions.config import AutoresetMode
from netgym_envapi.sessions.record import SessionRecord
from netgym_envapi.wrappers import parse_wrappers
from netgym_http.errors import client_address

router = APIRouter(tags=["sessions"], dependencies=[Depends(require_token)])

# How deep env_kwargs and wrappers may nest: deeper ones cannot be passed on to
# the session's process (Python's recursion limit), and no env needs them.
MAX_NESTING = 32
# Far more wrappers than any env stacks; checking a list costs the event loop its length.
MAX_WRAPPERS = 64


class OpenSession(BaseModel):
    """The body of POST /v1/sessions; a key it does not know (``num_env``) is refused."""

    model_config = ConfigDict(extra="forbid")

    env_id: str = Field(description="a Gymnasium env id, e.g. 'ALE/Pong-v5'")
    num_envs: int = Field(1, strict=True, description="copies of the env stepped as one batch")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="gymnasium.make kwargs")
    wrappers: list[str | dict[str, Any]] = Field(
        default_factory=list,
        max_length=MAX_WRAPPERS,
        description=f"server-side wrappers, applied in order (at most {MAX_WRAPPERS})",
    )
    autoreset_mode: AutoresetMode = AutoresetMode.SAME_STEP

    @field_validator("env_kwargs", "wrappers")
    @classmethod
    def _not_too_deep(cls, value: Any) -> Any:
        if _nesting(value) > MAX_NESTING:
            raise ValueError(f"nests lists and objects more than {MAX_NESTING} levels deep")
        return value


def _nesting(value: Any) -> int:
    """How many levels of lists and dicts ``value`` nests (without recursion)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            pending += [
                (child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)
            ]
    return deepest


def _decoded(name: str, tree: Any, kind: type[dict[str, Any]] | type[list[Any]]) -> Any:
    """``env_kwargs`` or ``wrappers`` as the client gave them: JSON with the tags of
    values for what JSON has not (a tuple, say); plain JSON is itself. Still a
    ``kind`` (dict or list) once decoded: a tag object is a JSON object too."""
    try:
        value = value_from_json(tree)
    except ProtocolError as exc:
        raise InvalidRequestError(f"{name}: {exc.message}") from None
    if not isinstance(value, kind):
        raise InvalidRequestError(
            f"{name} must be {'an object' if kind is dict else 'a list'}, not "
            f"{type(value).__name__} {tree!r:.200}"
        )
    # Names of arguments: a $dict may give other keys, which no keyword argument has.
    named: list[dict[Any, Any]] = [value] if isinstance(value, dict) else []
    if isinstance(value, list):
        items = [item for item in value if isinstance(item, dict)]
        named = items + [item["kwargs"] for item in items if isinstance(item.get("kwargs"), dict)]
    for names in named:
        if odd := [key for key in names if not isinstance(key, str)]:
            raise InvalidRequestError(f"{name}: argument names are strings, not {odd[0]!r:.100}")
    return value


@router.post("/v1/sessions", status_code=201)
async def open_session(
    body: OpenSession,
    request: Request,
    sessions: SessionsDep,
    settings: SettingsDep,
    dataport: DataPortDep,
) -> dict[str, Any]:
    """Make the envs; the reply says where to connect and what the spaces are."""
    record = await sessions.open(
        body.env_id,
        body.num_envs,
        _decoded("env_kwargs", body.env_kwargs, dict),
        parse_wrappers(_decoded("wrappers", body.wrappers, list)),
        body.autoreset_mode,
        client=client_address(request),
    )
    return {
        **record.public(),
        "observation_space": record.observation_space,
        "action_space": record.action_space,
        **record.episode,
        "action_meanings": record.action_meanings,
        "env_revision": record.env_revision,
        "data_port": settings.public_data_port or dataport.port,
        "attach_timeout_s": settings.attach_timeout_s,
    }


@router.get("/v1/sessions")
async def list_sessions(sessions: SessionsDep) -> dict[str, Any]:
    """The live sessions."""
    return {"sessions": [s.public() for s in sessions.live_sessions]}


@router.get("/v1/sessions/{session_id}")
async def get_session(session_id: str, sessions: SessionsDep) -> dict[str, Any]:
    """One session, live or recently ended (then with the reason it ended)."""
    return _described(sessions.get(session_id))


@router.delete("/v1/sessions/{session_id}")
async def close_session(session_id: str, sessions: SessionsDep) -> dict[str, Any]:
    """End a session and stop its workers."""
    return _described(await sessions.close(session_id))


def _described(record: SessionRecord) -> dict[str, Any]:
    """A session as GET and DELETE give it: with the error it ended with, if any."""
    return {**record.public(), "end_error": record.end_error}
