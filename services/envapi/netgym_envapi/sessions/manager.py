"""The main process's view of sessions: start, attach, watch, end.

Each session is a process started through a forkserver (fast to start, and no
fork of the threaded server). A SOCK_SEQPACKET pair joins the two: the session
reports ``ready``/``failed``/``ended`` on it, and the main process hands over
the client's socket on it. A session whose process exits, for any reason, is
moved to a bounded memory of ended sessions with the reason, so that a client
asking why its session died gets an answer. A session stuck in C code past its
step deadline (see ``deadline.py``) is killed from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import secrets
import signal
import socket
import time
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any

from netgym.errors import (
    InvalidRequestError,
    LimitExceededError,
    NetgymError,
    SessionEndedError,
    SessionNotFoundError,
    SessionStateError,
    WorkerCrashedError,
    WorkerTimeoutError,
    error_from_dict,
)
from netgym.folders import OwnedFolder
from netgym.protocol.sharedmemory import memory_folder, remove_stale_memory_folders
from netgym_envapi.catalog import (
    emulator_instance_limit,
    find_env,
    register_ale,
    serve_emulator,
    serve_modules,
)
from netgym_envapi.sessions.config import AutoresetMode, SessionConfig
from netgym_envapi.sessions.control import CONTROL_MESSAGE_BYTES, ControlReader, send_control
from netgym_envapi.sessions.deadline import StepDeadline
from netgym_envapi.sessions.lifetime import describe_exit
from netgym_envapi.sessions.process import run_session
from netgym_envapi.sessions.record import (
    SessionRecord,
    SessionState,
    log_end,
    named,
    read_its_error,
)
from netgym_envapi.settings import Settings
from netgym_envapi.wrappers import WrapperSpec

log = logging.getLogger("netgym.envapi.sessions")

# After a session process exits, how long its last control messages may take to
# be read (its workers, killed with it, may hold the control socket a moment).
EXIT_DRAIN_TIMEOUT_S = 2.0
# How often the step deadlines of attached sessions are checked, and how far past
# its deadline a session may be before it is killed: within the margin, the
# session's own SIGALRM and worker timeouts end the step and clean up.
WATCHDOG_PERIOD_S = 1.0
WATCHDOG_MARGIN_S = 5.0
# How long one good worker check (GET /v1/health) stands for the next ones.
WORKER_CHECK_VALID_S = 5.0
SHARED_MEMORY_PREFIX = "netgym-sessions-"  # the shared-memory folders the envapi makes


class SessionManager:
    """Every session of this service."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["netgym_envapi.sessions.process"])
        self._live: dict[str, SessionRecord] = {}
        self._ended: OrderedDict[str, SessionRecord] = OrderedDict()
        self._spec_cache: dict[str, dict[str, Any]] = {}
        self._describing: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reserved = 0  # slots taken by sessions being started, not yet in _live
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._worker_check_lock = asyncio.Lock()
        self._workers_checked_at = -WORKER_CHECK_VALID_S
        serve_modules(settings.env_module_list)
        serve_emulator(settings.emulator_url)
        register_ale()  # here, before find_env runs in threads
        self.shared_memory_dir: Path | None = None
        self._own_shared_memory_dir: OwnedFolder | None = None
        if settings.shared_memory:
            self.shared_memory_dir, self._own_shared_memory_dir = memory_folder(
                settings.shared_memory_dir, SHARED_MEMORY_PREFIX
            )
        else:
            remove_stale_memory_folders(SHARED_MEMORY_PREFIX)

    @property
    def live_sessions(self) -> list[SessionRecord]:
        return list(self._live.values())

    def get(self, session_id: str) -> SessionRecord:
        """A live or recently ended session.

        Raises:
            SessionNotFoundError: when no such session is known.
        """
        record = self._live.get(session_id) or self._ended.get(session_id)
        if record is None:
            shown = repr(session_id) if len(session_id) <= 64 else f"{session_id[:32]!r}..."
            raise SessionNotFoundError(
                f"no session {shown} (it never existed, or ended long ago; ids are 16 hex digits)"
            )
        return record

    async def open(
        self,
        env_id: str,
        num_envs: int,
        env_kwargs: dict[str, Any],
        wrappers: list[WrapperSpec],
        autoreset_mode: AutoresetMode,
        client: str | None = None,
    ) -> SessionRecord:
        """Start a session and wait until its envs are made; ``client`` (its address)
        is logged with it.

        Raises:
            UnknownEnvError, LimitExceededError, InvalidRequestError: before
                anything starts; the env's own error when making it fails;
                WorkerTimeoutError when making it takes too long.
        """
        settings = self.settings
        # In a thread: it may ask the emulator service, which must not stall the loop.
        entry = await asyncio.to_thread(find_env, env_id)
        timeout_s = env_kwargs.get("timeout_s")
        if entry.family == "emulator" and timeout_s is None:
            env_kwargs = {**env_kwargs, "timeout_s": _emulator_timeout_s(settings.step_timeout_s)}
        elif (
            entry.family == "emulator"
            and isinstance(timeout_s, int | float)
            and timeout_s > settings.step_timeout_s / 2
        ):
            # Half: a reset starts the instance (seconds) before it waits timeout_s.
            raise InvalidRequestError(
                f"env_kwargs timeout_s={timeout_s:g} leaves too little of the envapi's "
                f"step_timeout_s ({settings.step_timeout_s:g} s, NETGYM_STEP_TIMEOUT_S): a hung "
                "instance would end the whole session, not only its episode; use at most half "
                f"of it, {settings.step_timeout_s / 2:g}",
                details={"timeout_s": timeout_s, "step_timeout_s": settings.step_timeout_s},
            )
        if num_envs < 1:
            raise InvalidRequestError(
                f"num_envs={num_envs}: a session has at least one env",
                details={"num_envs": num_envs},
            )
        if num_envs > settings.max_envs_per_session:
            raise LimitExceededError(
                f"num_envs={num_envs} is above {settings.max_envs_per_session}, the limit "
                "(NETGYM_MAX_ENVS_PER_SESSION)",
                details={"num_envs": num_envs, "limit": settings.max_envs_per_session},
            )
        instance_limit = emulator_instance_limit() if entry.family == "emulator" else None
        if instance_limit is not None and num_envs > instance_limit:
            raise LimitExceededError(
                f"num_envs={num_envs} is above {instance_limit}, the emulator service's limit "
                f"of FCEUX instances at once (NETGYM_EMULATOR_MAX_INSTANCES), and each env of "
                f"{env_id} runs one; lower num_envs or raise that limit",
                details={"num_envs": num_envs, "limit": instance_limit},
            )
        if not await self._reserve_slot():
            raise LimitExceededError(
                f"this service already runs {settings.max_sessions} sessions, its limit "
                "(NETGYM_MAX_SESSIONS); close one or raise the limit",
                details={"limit": settings.max_sessions},
            )
        try:
            config = self._config(env_id, num_envs, env_kwargs, wrappers, autoreset_mode)
            record = await self._start(replace(config, client=client))
        finally:
            self._reserved -= 1  # the record, when there is one, counts itself now
        try:
            await asyncio.wait_for(asyncio.shield(record.ready), settings.make_timeout_s)
        except TimeoutError:
            await self.close(record.session_id, "making its envs took too long")
            raise WorkerTimeoutError(
                f"making {num_envs} x {env_id!r} took longer than {settings.make_timeout_s:g} s "
                "(NETGYM_MAKE_TIMEOUT_S)"
            ) from None
        except NetgymError:
            await record.exited.wait()
            raise
        if record.end_reason is not None:
            # Ended, or asked to end (a DELETE, the service stopping), as its "ready"
            # came: a 201 would send the client to a session that is gone.
            await record.exited.wait()
            if record.end_error is not None:
                raise error_from_dict(record.end_error)
            raise SessionEndedError(
                f"session {record.session_id} ended as its envs were made: {record.end_reason}"
            )
        if client is not None:
            log.info("%s opened for %s", named(record), client)
        return record

    def _config(
        self,
        env_id: str,
        num_envs: int,
        env_kwargs: dict[str, Any],
        wrappers: list[WrapperSpec],
        autoreset_mode: AutoresetMode,
    ) -> SessionConfig:
        """A new session's configuration: the request plus the service's limits."""
        settings = self.settings
        return SessionConfig(
            session_id=secrets.token_hex(8),
            env_id=env_id,
            num_envs=num_envs,
            env_kwargs=env_kwargs,
            wrappers=wrappers,
            autoreset_mode=autoreset_mode,
            workers=min(settings.workers_per_session, num_envs),
            idle_timeout_s=settings.idle_timeout_s,
            attach_timeout_s=settings.attach_timeout_s,
            step_timeout_s=settings.step_timeout_s,
            make_timeout_s=settings.make_timeout_s,
            max_message_bytes=settings.max_message_bytes,
            env_modules=settings.env_module_list,
            emulator_url=settings.emulator_url,
            shared_memory_dir=str(self.shared_memory_dir) if self.shared_memory_dir else None,
            log_level=logging.getLogger().getEffectiveLevel(),
        )

    async def _start(self, config: SessionConfig) -> SessionRecord:
        """Start the session process and track it (in ``_live``) from then on."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        process = self._context.Process(
            target=run_session, args=(config, child), name=f"netgym-session-{config.session_id}"
        )
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, process.start)
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        parent.setblocking(False)
        record = SessionRecord(config=config, process=process, control=parent, pid=process.pid)
        self._track(record)
        return record

    def _track(self, record: SessionRecord) -> None:
        """Count a started session as live; read its messages and notice its exit."""
        loop = asyncio.get_running_loop()
        self._live[record.session_id] = record
        loop.add_reader(record.process.sentinel, self._on_exit, record)
        record.watcher = loop.create_task(self._watch(record))

    async def _reserve_slot(self) -> bool:
        """Take a slot for a new session; waits a moment for sessions already ending.

        The check and the taking happen with no ``await`` between them, so that
        requests arriving together cannot all pass the check.
        """
        deadline = time.monotonic() + 2.0
        while True:
            # A session counts until its process exits: it says "ended" before its
            # workers (and their emulators) have stopped.
            running = sum(1 for r in self._live.values() if r.running)
            if running + self._reserved < self.settings.max_sessions:
                self._reserved += 1
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)

    async def describe(self, env_id: str) -> dict[str, Any]:
        """The spaces of an env, made in a short-lived session that concurrent calls
        share; cached, but for NES games, whose folders may change at any time."""
        entry = await asyncio.to_thread(find_env, env_id)
        cached = entry.family != "emulator"
        if cached and env_id in self._spec_cache:
            return self._spec_cache[env_id]
        pending = self._describing.get(env_id)
        if pending is None:
            pending = asyncio.ensure_future(self._describe(env_id))
            self._describing[env_id] = pending
            pending.add_done_callback(lambda _: self._describing.pop(env_id, None))
            pending.add_done_callback(read_its_error)
        spec = await asyncio.shield(pending)
        if cached:
            self._spec_cache[env_id] = spec
        return spec

    async def _describe(self, env_id: str) -> dict[str, Any]:
        record = await self.open(env_id, 1, {}, [], AutoresetMode.SAME_STEP)
        description = {  # taken before the close: an ended record keeps no spaces
            "env_id": env_id,
            "observation_space": record.observation_space,
            "action_space": record.action_space,
            **record.episode,
            "action_meanings": record.action_meanings,
            "env_revision": record.env_revision,
        }
        await self.close(record.session_id, "it only described its env")
        return description

    async def _watch(self, record: SessionRecord) -> None:
        """Read the session's control messages until the socket's end."""
        loop = asyncio.get_running_loop()
        reader = ControlReader()
        try:
            while True:
                try:
                    packet = await loop.sock_recv(record.control, CONTROL_MESSAGE_BYTES)
                except OSError:
                    break
                if not packet:
                    break
                data = reader.message(packet)
                if data is None:
                    continue
                try:
                    self._on_control(record, json.loads(data))
                except (ValueError, KeyError, TypeError):
                    log.exception("session %s sent a bad control message", record.session_id)
        finally:
            record.control.close()

    def _on_control(self, record: SessionRecord, message: dict[str, Any]) -> None:
        if message["op"] == "ready":
            record.observation_space = message["observation_space"]
            record.action_space = message["action_space"]
            record.episode = message["episode"]
            record.action_meanings = message.get("action_meanings")
            record.env_revision = message.get("env_revision")
            record.state = SessionState.READY
            if not record.ready.done():
                record.ready.set_result(None)
        elif message["op"] == "failed":
            if not record.ready.done():
                record.ready.set_exception(error_from_dict(message["error"]))
        elif message["op"] == "ended":
            record.end_reason = record.end_reason or message["reason"]
            record.end_error = record.end_error or message.get("error")
            record.state = SessionState.ENDED
            # After any client socket handed over before this message was read: a
            # session that gave up waiting for its client answers those until this.
            with contextlib.suppress(OSError):
                send_control(record.control, {"op": "ended_seen"})

    def _on_exit(self, record: SessionRecord) -> None:
        """The session process has exited: finish once its last messages are read."""
        loop = asyncio.get_running_loop()
        loop.remove_reader(record.process.sentinel)
        record.running = False
        self._spawn(self._finish_exit(record))

    async def _finish_exit(self, record: SessionRecord) -> None:
        # The watcher may hold the last message ("ready", "failed", "ended") in hand
        # without having acted on it yet: let it read to the socket's end rather
        # than cancel it, or that message, and the true reason, would be lost.
        if record.watcher is not None:
            done, _ = await asyncio.wait([record.watcher], timeout=EXIT_DRAIN_TIMEOUT_S)
            if not done:
                log.warning(
                    "session %s exited but its control socket stays open", record.session_id
                )
                record.watcher.cancel()
                await asyncio.wait([record.watcher])
        process = record.process
        if process.exitcode is None:
            await asyncio.get_running_loop().run_in_executor(None, process.join, 5.0)
        record.exitcode = process.exitcode
        if record.exitcode is not None:
            process.close()  # frees its pipes: ended records are kept a long while
        if record.deadline is not None:
            record.deadline.close()
            record.deadline = None
        if self.shared_memory_dir is not None:  # when the process could not remove it
            (self.shared_memory_dir / record.session_id).unlink(missing_ok=True)
        exit_words = describe_exit(record.exitcode)
        ended_by = record.end_reason  # the service's own reason (DELETE, stopping, watchdog)
        if record.end_reason is None:
            record.end_reason = f"its process {exit_words}"
            record.end_error = WorkerCrashedError(
                f"session {record.session_id} ended: {record.end_reason}; open a new session"
            ).to_dict()
        record.state = SessionState.ENDED
        log_end(record)
        if not record.ready.done():
            record.ready.set_exception(
                SessionEndedError(  # by the service itself: no crash
                    f"session {record.session_id} ended while making its envs: {ended_by}"
                )
                if ended_by
                else WorkerCrashedError(f"the session process {exit_words} while making its envs")
            )
        self._live.pop(record.session_id, None)
        record.keep_only_its_end()
        self._ended[record.session_id] = record
        while len(self._ended) > self.settings.ended_session_memory:
            self._ended.popitem(last=False)
        record.exited.set()

    def _spawn(self, coroutine: Any) -> None:
        """Run a task that nobody awaits, keeping a reference until it is done."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start(self) -> None:
        """Start checking the step deadlines of attached sessions."""
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch_deadlines())

    async def _watch_deadlines(self) -> None:
        while True:
            await asyncio.sleep(WATCHDOG_PERIOD_S)
            now = time.monotonic()
            for record in list(self._live.values()):
                if record.deadline is None or not record.running or record.killed:
                    continue
                deadline = record.deadline.get()
                if deadline > 0 and now > deadline + WATCHDOG_MARGIN_S:
                    self._kill_hung(record)

    def _kill_hung(self, record: SessionRecord) -> None:
        """Kill a session stuck in a step where its own timeouts cannot reach (C code)."""
        timeout = record.config.step_timeout_s
        reason = (
            f"hung in a step, or closing its envs, for more than {timeout:g} s "
            "(step_timeout_s); killed"
        )
        log.warning("session %s %s", record.session_id, reason)
        record.end_reason = reason
        record.end_error = WorkerTimeoutError(
            f"session {record.session_id} {reason}; open a new session",
            details={"timeout_s": timeout},
        ).to_dict()
        _signal(record.pid, signal.SIGKILL)
        record.killed = True  # no second kill while it is reaped

    def attach(self, session_id: str, client: socket.socket) -> SessionRecord:
        """Hand the client's socket to the session process.

        Raises:
            SessionNotFoundError, SessionEndedError, SessionStateError.
        """
        record = self.get(session_id)
        if record.state == SessionState.ENDED or not record.running or record.killed:
            raise SessionEndedError(
                f"session {session_id} has ended: {record.end_reason or 'its process exited'}"
            )
        if record.state != SessionState.READY:
            raise SessionStateError(
                f"session {session_id} is {record.state.value}, not ready for a client"
            )
        try:
            deadline, fd = StepDeadline.create(f"netgym-deadline-{session_id}")
        except OSError as exc:
            raise NetgymError(f"cannot attach to session {session_id}: {exc}") from None
        try:
            send_control(record.control, {"op": "attach"}, [client.fileno(), fd])
        except OSError as exc:
            deadline.close()
            raise SessionEndedError(
                f"session {session_id} has ended: its process no longer listens ({exc})"
            ) from None
        finally:
            os.close(fd)  # the session process holds its own copy now
        record.deadline = deadline
        record.state = SessionState.ATTACHED
        return record

    async def close(
        self, session_id: str, reason: str = "closed through the REST API"
    ) -> SessionRecord:
        """End a session: SIGTERM, then SIGKILL after a grace period."""
        record = self.get(session_id)
        if not record.exited.is_set():
            if record.state != SessionState.ENDED and record.running:
                if record.end_reason is None:
                    # Its own, should the process be killed before it says why it ended.
                    record.end_reason = reason
                    record.end_error = SessionEndedError(
                        f"session {session_id} ended: {reason}"
                    ).to_dict()
                _signal(record.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(record.exited.wait(), 5.0)
            except TimeoutError:
                if record.running:
                    _signal(record.pid, signal.SIGKILL)
                await record.exited.wait()
        return record

    async def shutdown(self) -> None:
        """End every session (the service is stopping)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        await asyncio.gather(
            *(self.close(s.session_id, "the service stopped") for s in self.live_sessions),
            return_exceptions=True,
        )
        if self._own_shared_memory_dir is not None:
            self._own_shared_memory_dir.remove()

    async def check_workers(self) -> None:
        """Start and reap a trivial process, proving sessions can start.

        One check at a time, and a success stands for ``WORKER_CHECK_VALID_S``:
        a flood of health probes must not become a flood of processes.

        Raises:
            NetgymError: when no process could be started.
        """
        async with self._worker_check_lock:
            if time.monotonic() - self._workers_checked_at < WORKER_CHECK_VALID_S:
                return
            await self._start_a_test_process()
            self._workers_checked_at = time.monotonic()

    async def _start_a_test_process(self) -> None:
        process = self._context.Process(target=os.getpid)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, process.start)
        await loop.run_in_executor(None, process.join, 10.0)
        if process.exitcode is None:
            process.kill()
            await loop.run_in_executor(None, process.join, 5.0)
            raise NetgymError("a test worker process did not exit within 10 s")
        exitcode = process.exitcode
        process.close()
        if exitcode != 0:
            raise NetgymError(f"a test worker process {describe_exit(exitcode)}")


def _signal(pid: int | None, signum: int) -> None:
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _emulator_timeout_s(step_timeout_s: float) -> float:
    """An NES env's own hang timeout, when its client sets none: the env's default,
    or half the envapi's step timeout when that is shorter (a reset starts the
    instance before it waits), so that a hung instance ends its episode, not the
    whole session."""
    from netgym.emulator.env import DEFAULT_TIMEOUT_S, MIN_TIMEOUT_S

    return max(MIN_TIMEOUT_S, min(DEFAULT_TIMEOUT_S, step_timeout_s / 2))
