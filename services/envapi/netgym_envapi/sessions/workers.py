"""The worker processes that step a session's envs, one slice of envs each.

Modelled on Gymnasium's AsyncVectorEnv: a worker answers every command with
``(success, result)``; a failure carries the error (and the env's traceback)
back to the session, which raises it; every wait has a timeout, and a worker
that dies or hangs becomes a typed error naming it. Unlike AsyncVectorEnv, a
worker steps several envs, one worker per core, because on few cores a
process per env spends more on switching than on stepping; and the session
process steps the first slice itself.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import signal
import time
from collections.abc import Callable, Sequence
from functools import partial
from multiprocessing.connection import Connection, wait
from types import FrameType
from typing import Any, NoReturn

import gymnasium as gym
import numpy as np

from netgym.errors import (
    LimitExceededError,
    NetgymError,
    WorkerCrashedError,
    WorkerTimeoutError,
    error_from_dict,
)
from netgym.protocol import BatchLayout, ResultLayout
from netgym_envapi.sessions.config import AutoresetMode
from netgym_envapi.sessions.envslice import (
    EnvInfos,
    EnvSlice,
    StepTimerExpired,
    as_netgym_error,
)
from netgym_envapi.sessions.lifetime import describe_exit, die_with_parent

_fork = multiprocessing.get_context("fork")


def _error_dict(exc: BaseException) -> dict[str, Any]:
    return as_netgym_error(exc).to_dict()


def _worker_main(connection: Connection, make_slice: Callable[[], EnvSlice]) -> None:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        envs = make_slice()
    except BaseException as exc:
        connection.send((False, _error_dict(exc)))
        return
    connection.send((True, None))
    try:
        while True:
            command, *args = connection.recv()
            if command == "close":
                break
            try:
                if command == "step":
                    result = envs.step()
                elif command == "release":
                    result = envs.release(*args)
                else:
                    result = envs.reset(*args)
                connection.send((True, result))
            except Exception as exc:
                connection.send((False, _error_dict(exc)))
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        envs.close()


def split(num_envs: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` slices of near-equal size, one per worker."""
    count = max(1, min(workers, num_envs))
    bounds = [round(i * num_envs / count) for i in range(count + 1)]
    return list(itertools.pairwise(bounds))


class WorkerPool:
    """The envs of one session: the first slice in this process, the others in workers.

    Stepping the first slice here, while the workers step theirs, keeps a
    process wake-up off every step; a session of one env has no worker at
    all. A hang in this process's slice is cut short by SIGALRM; a crash in
    it ends the session process, which the service reports to the client.
    """

    def __init__(
        self,
        make_env: Callable[[], gym.Env[Any, Any]],
        num_envs: int,
        workers: int,
        results: ResultLayout,
        actions: BatchLayout,
        result_buffer: Any,
        action_buffer: Any,
        autoreset_mode: AutoresetMode,
        start_timeout_s: float,
    ) -> None:
        self.slices = split(num_envs, workers)

        def make_slice(start: int, stop: int) -> EnvSlice:
            return EnvSlice(
                make_env,
                start,
                stop,
                results,
                actions,
                result_buffer,
                action_buffer,
                autoreset_mode,
            )

        self._connections: dict[int, Connection] = {}
        self._processes: dict[int, multiprocessing.process.BaseProcess] = {}
        self._local: EnvSlice | None = None
        # Workers fork before this process makes its own envs, so that none
        # inherits an env's sockets or emulator process.
        for index, (start, stop) in enumerate(self.slices[1:], start=1):
            parent, child = _fork.Pipe()
            process = _fork.Process(
                target=_worker_main,
                args=(child, partial(make_slice, start, stop)),
                name=f"netgym-worker-{start}-{stop}",
                daemon=True,
            )
            process.start()
            child.close()
            self._connections[index] = parent
            self._processes[index] = process
        self._local_call = ("start", start_timeout_s)
        signal.signal(signal.SIGALRM, self._expire)
        try:
            self._local = self._run_local(
                lambda: make_slice(*self.slices[0]), start_timeout_s, "start"
            )
            self._gather(start_timeout_s, "start")
        except BaseException:
            self.close()
            raise

    def reset(
        self,
        seeds: Sequence[int | None],
        options: dict[str, Any] | None,
        mask: np.ndarray | None,
        timeout_s: float,
    ) -> EnvInfos:
        """Reset the envs (those ``mask`` selects); return ``(index, info)`` pairs."""
        assert self._local is not None
        local = self._local
        self._send_all(("reset", seeds, options, mask), "reset")
        try:
            return self._combine(lambda: local.reset(seeds, options, mask), timeout_s, "reset")
        except LimitExceededError:
            # The emulator instances this failed reset started would starve other clients.
            with contextlib.suppress(NetgymError):
                self._send_all(("release", mask), "release")
                self._combine(lambda: local.release(mask), timeout_s, "release")
            raise

    def step(self, timeout_s: float) -> EnvInfos:
        """Step every env with the actions in shared memory."""
        assert self._local is not None
        if self._local.split_step and not self._connections:
            return self._step_split(self._local)
        self._send_all(("step",), "step")
        return self._combine(self._local.step, timeout_s, "step")

    def _step_split(self, local: EnvSlice) -> EnvInfos:
        """Step envs that run in other processes (emulators) from this one, no worker.

        No alarm is armed: such envs wait on sockets that have timeouts of their own.
        """
        try:
            return local.step()
        except NetgymError:
            raise
        except Exception as exc:
            raise error_from_dict(_error_dict(exc)) from None

    def _combine(self, local: Callable[[], EnvInfos], timeout_s: float, what: str) -> EnvInfos:
        """Run this process's part, then collect the workers'; raise the first failure."""
        deadline = time.monotonic() + timeout_s
        failure: NetgymError | None = None
        try:
            infos: EnvInfos = self._run_local(local, timeout_s, what)
        except WorkerTimeoutError:
            self.close(timeout_s=1.0)
            raise
        except Exception as exc:
            failure, infos = error_from_dict(_error_dict(exc)), []
        try:
            infos += self._gather(timeout_s, what, deadline)
        except NetgymError as exc:
            if failure is None or isinstance(exc, WorkerCrashedError | WorkerTimeoutError):
                failure = exc
        if failure is not None:
            raise failure
        return infos

    def _expire(self, signum: int, frame: FrameType | None) -> None:
        what, timeout_s = self._local_call
        raise StepTimerExpired(
            f"{self._describe(0)} did not finish a {what} within {timeout_s:g} s "
            "(step_timeout_s); the session has ended",
            details={"worker": 0, "timeout_s": timeout_s},
        )

    def _run_local(self, function: Callable[[], Any], timeout_s: float, what: str) -> Any:
        # The SIGALRM handler is installed once (in __init__); a step only arms the timer.
        self._local_call = (what, timeout_s)
        signal.setitimer(signal.ITIMER_REAL, max(timeout_s, 0.001))
        try:
            return function()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _send_all(self, command: tuple[Any, ...], what: str) -> None:
        for index, connection in self._connections.items():
            try:
                connection.send(command)
            except OSError:
                self._crashed(index, what)

    def _describe(self, index: int) -> str:
        start, stop = self.slices[index]
        envs = f"env {start}" if stop - start == 1 else f"envs {start}-{stop - 1}"
        if index == 0:
            return f"the session process ({envs})"
        return f"worker {index} ({envs})"

    def _gather(self, timeout_s: float, what: str, deadline: float | None = None) -> EnvInfos:
        """Collect one reply from every worker; raise the first failure after all replied.

        ``timeout_s`` is the limit named in errors; ``deadline`` (``time.monotonic()``)
        is when to give up, by default ``timeout_s`` from now.
        """
        pending = dict(self._connections)
        sentinels = {p.sentinel: i for i, p in self._processes.items()}
        infos: EnvInfos = []
        failure: NetgymError | None = None
        if deadline is None:
            deadline = time.monotonic() + timeout_s
        while pending:
            remaining = deadline - time.monotonic()
            watched = [s for s, i in sentinels.items() if i in pending]
            ready = wait([*pending.values(), *watched], timeout=max(0.0, remaining))
            if not ready:
                index = min(pending)
                self.close(timeout_s=1.0)
                raise WorkerTimeoutError(
                    f"{self._describe(index)} did not finish a {what} within {timeout_s:g} s "
                    "(step_timeout_s); the session's workers were stopped",
                    details={"worker": index, "timeout_s": timeout_s},
                )
            for item in ready:
                if isinstance(item, Connection):
                    found = [i for i, c in pending.items() if c is item]
                    if not found:
                        continue
                    index = found[0]
                elif isinstance(item, int) and sentinels[item] in pending:
                    index = sentinels[item]
                    item = pending[index]
                    if not item.poll():
                        self._crashed(index, what)
                else:
                    continue
                try:
                    success, result = item.recv()
                except (EOFError, OSError):
                    self._crashed(index, what)
                del pending[index]
                if not success:
                    failure = failure or error_from_dict(result)
                elif result:
                    infos.extend(result)
        if failure is not None:
            raise failure
        return infos

    def _crashed(self, index: int, what: str) -> NoReturn:
        process = self._processes[index]
        process.join(1.0)
        exitcode = process.exitcode
        self.close(timeout_s=1.0)
        raise WorkerCrashedError(
            f"{self._describe(index)} {describe_exit(exitcode)} during a {what}; "
            "the session has ended, open a new one",
            details={"worker": index, "exitcode": exitcode},
        )

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop every worker (ask first, then SIGKILL) and close this process's envs."""
        for connection in self._connections.values():
            with contextlib.suppress(OSError, ValueError):
                connection.send(("close",))
        if self._local is not None:
            self._local.close()
            self._local = None
        deadline = time.monotonic() + timeout_s
        for process in self._processes.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(1.0)
        for connection in self._connections.values():
            connection.close()
        self._connections, self._processes = {}, {}
