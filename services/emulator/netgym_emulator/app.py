"""The emulator service's REST API: games, and instances lent to envs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from netgym.errors import NetgymError, SessionEndedError
from netgym_emulator.display import VirtualDisplay
from netgym_emulator.pool import InstancePool
from netgym_emulator.settings import EmulatorSettings
from netgym_http.errors import install_error_handlers
from netgym_http.guard import RequestGuard

log = logging.getLogger("netgym.emulator")
CALLER_POLL_S = 0.2  # how often a start looks whether its caller has left


def get_pool(request: Request) -> InstancePool:
    pool: InstancePool = request.app.state.pool
    return pool


PoolDep = Annotated[InstancePool, Depends(get_pool)]


class StartInstance(BaseModel):
    """The body of POST /v1/instances."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "yes" is no true

    game: str
    screen: bool | None = None  # False: no screen in replies (faster when only RAM is observed)
    screen_file: bool = False  # True: screens go to a file in the shared screen folder
    # How long one call of the game script may run before it is stopped with an
    # error that names its line; a client sets it below its own reply timeout.
    script_timeout_s: Annotated[float, Field(gt=0, le=3600)] | None = None
    # How long the instance waits for its client's next request at least (a session
    # that may be idle longer than the service's NETGYM_EMULATOR_IDLE_TIMEOUT_S).
    idle_timeout_s: Annotated[float, Field(gt=0, le=10**7)] | None = None


def create_app(settings: EmulatorSettings | None = None) -> FastAPI:
    """The app; its lifespan starts Xvfb and kills every instance on exit."""
    settings = settings or EmulatorSettings()
    settings.check_bind()
    if shutil.which(settings.fceux) is None:
        raise NetgymError(
            f"FCEUX not found as {settings.fceux!r}: install it (Debian: apt-get install fceux, "
            "which puts it in /usr/games) or set NETGYM_EMULATOR_FCEUX"
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        display = VirtualDisplay()
        display.start()
        pool = InstancePool(settings, display.live_name)
        app.state.pool, app.state.display = pool, display
        reaper = asyncio.get_running_loop().create_task(_supervise_forever(pool, display))
        try:
            yield
        finally:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
            pool.stop_all()
            display.stop()

    app = FastAPI(title="netgym emulator", version="0.1.0", lifespan=lifespan)
    app.add_middleware(
        RequestGuard,
        token=settings.token,
        guarded=lambda path: path.startswith("/v1/instances"),
        unauthorized=(
            "wrong or missing token: instances are started, listed and stopped with "
            "'Authorization: Bearer <token>', the service's NETGYM_EMULATOR_TOKEN (the envapi "
            "sends its own NETGYM_EMULATOR_TOKEN)"
        ),
    )

    install_error_handlers(app, "emulator service", log)

    @app.get("/v1/health")
    async def health(request: Request, pool: PoolDep) -> JSONResponse:
        display_ok = request.app.state.display.is_alive()
        body = {
            "status": "ok" if display_ok else "failing",
            "display": display_ok,
            "display_restarts": request.app.state.display.restarts,
            "games": len(pool.games),
            "instances": len(pool.instances),
            "starting": pool.starting,
            "screen_files": pool.screen_files,
        }
        return JSONResponse(body, status_code=200 if display_ok else 503)

    @app.get("/v1/games")
    async def games(pool: PoolDep) -> dict[str, Any]:
        pool.rescan()
        return {
            "games": [g.spec() for g in pool.games.values()],
            "problems": pool.problems,
            "max_instances": pool.settings.max_instances,
        }

    @app.get("/v1/games/{name}")
    async def game(name: str, pool: PoolDep) -> dict[str, Any]:
        return pool.game(name).spec()

    @app.post("/v1/instances", status_code=201)
    async def start(body: StartInstance, request: Request, pool: PoolDep) -> dict[str, Any]:
        starting = asyncio.ensure_future(
            pool.start(
                body.game,
                body.screen,
                body.screen_file,
                body.script_timeout_s or 0.0,
                body.idle_timeout_s,
            )
        )
        # Its session may end (or die) meanwhile: no one could stop the instance then,
        # and its start may take seconds, a slot held all along.
        try:
            while not (await asyncio.wait([starting], timeout=CALLER_POLL_S))[0]:
                if await request.is_disconnected():
                    starting.cancel()  # the start kills what it started
                    await asyncio.wait([starting])
                    break
        except BaseException:  # this request is cancelled (the service stops, say)
            starting.cancel()
            raise
        instance = None if starting.cancelled() else starting.result()
        if instance is None or await request.is_disconnected():
            what = f"{body.game} instance"
            if instance is not None:
                pool.stop(instance.instance_id)
                what += f" {instance.instance_id}"
            log.info("%s stopped: its caller left before the reply", what)
            raise SessionEndedError(
                f"{what} stopped: its caller left (or closed its half of the connection)"
            )
        # The bridge is reached at the address the caller reached us by, with the key
        # that only this reply gives.
        return {
            **instance.public(),
            "host": request.url.hostname,
            "key": instance.key,
            "spec": instance.game.spec(),
        }

    @app.get("/v1/instances")
    async def instances(pool: PoolDep) -> dict[str, Any]:
        pool.reap()
        return {
            "instances": [i.public() for i in pool.instances.values()],
            "starting": pool.starting,
        }

    @app.get("/v1/instances/{instance_id}")
    async def instance(instance_id: str, pool: PoolDep) -> dict[str, Any]:
        return pool.get(instance_id).public()

    @app.delete("/v1/instances/{instance_id}")
    async def stop(instance_id: str, pool: PoolDep) -> dict[str, Any]:
        pool.stop(instance_id)
        return {"instance_id": instance_id, "state": "stopped"}

    return app


async def _supervise_forever(pool: InstancePool, display: VirtualDisplay) -> None:
    """Every second: forget exited instances, and start Xvfb again if it died."""
    display_failed = False
    while True:
        await asyncio.sleep(1.0)
        try:
            pool.reap(check_clients=True)
        except Exception:  # a bug: logged, and the supervisor goes on
            log.exception("reaping the instances failed")
        try:
            display.live_name()
            display_failed = False
        except Exception:  # tried again every second; /v1/health answers 503 meanwhile
            if not display_failed:
                log.exception("Xvfb could not be started again; trying every second")
            display_failed = True
