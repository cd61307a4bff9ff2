"""The session process: one per session, it owns the client's data connection.

The envapi's main process starts it, then hands it the client's TCP socket
(``SCM_RIGHTS``) once the HELLO checks out. From then on the client talks to
this process alone: no hop through the main process, and a crash here ends
only this session. The envs step in slices (``WorkerPool``): the first here,
each other in a worker process, all over one shared-memory buffer (a file a
client on this host may map too, when the service has a shared-memory
folder): actions are received straight into it, results are sent straight
out of it. Before each reset or step the session
writes its deadline where the main process can see it (``deadline.py``), so
that a hang in C code here, out of reach of SIGALRM, still ends the session.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import mmap
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from netgym.errors import (
    ConnectionLostError,
    EnvError,
    InvalidRequestError,
    NetgymError,
    ProtocolError,
    SessionEndedError,
    SessionStateError,
)
from netgym.protocol import PROTOCOL_VERSION, BatchLayout, MessageType, ResultLayout, pack_space
from netgym.protocol.frames import Buffer, FrameReader, pack_error, send_frame, send_value
from netgym.protocol.sharedmemory import HEADER_BYTES, create_results_file
from netgym.protocol.values import pack_value, unpack_value
from netgym_envapi.catalog import (
    action_meanings,
    env_revision,
    episode_spec,
    make_env,
    serve_emulator,
    serve_modules,
)
from netgym_envapi.sessions.config import AutoresetMode, SessionConfig
from netgym_envapi.sessions.control import CONTROL_MESSAGE_BYTES, send_control
from netgym_envapi.sessions.deadline import StepDeadline
from netgym_envapi.sessions.envslice import EnvInfos, SplitStepEnv
from netgym_envapi.sessions.infos import InfoPacker
from netgym_envapi.sessions.lifetime import die_with_parent
from netgym_envapi.sessions.limits import check_described_size, check_step_size, shortened
from netgym_envapi.sessions.signals import (
    ClientNotReading,
    Terminated,
    end_when_the_envapi_is_gone,
    envapi_gone,
    raise_terminated,
    send_whole,
)
from netgym_envapi.sessions.workers import WorkerPool
from netgym_http.settings_help import LOG_FORMAT

log = logging.getLogger("netgym.envapi.session")
LOGGED_ENV_ERRORS = 20  # distinct env errors a session logs; the rest only go to its client
# How much longer than the session's idle limit its emulator instances wait for it.
INSTANCE_IDLE_MARGIN_S = 30.0
# How long a session that gave up waiting for its client waits for the main
# process to say it has heard so (it answers at once unless its loop is stalled).
ENDED_SEEN_TIMEOUT_S = 5.0


def run_session(config: SessionConfig, control: socket.socket) -> None:
    """Entry point of a session process."""
    die_with_parent()
    # Started by the forkserver, it has none of the envapi's logging set-up.
    logging.basicConfig(level=config.log_level, format=LOG_FORMAT)
    signal.signal(signal.SIGTERM, raise_terminated)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    session = Session(config, control)
    try:
        session.run()
    except Terminated:
        session.terminated = True
        session.end(
            "the envapi that served it is gone (killed?)"
            if envapi_gone.is_set()
            else "was ended by the envapi (it is stopping, or DELETE /v1/sessions closed it)"
        )
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a late one must not cut the shutdown
        session.shutdown()


class Session:
    """The state of one session inside its process."""

    def __init__(self, config: SessionConfig, control: socket.socket) -> None:
        self.config = config
        self.control = control
        self.pool: WorkerPool | None = None
        self.client: socket.socket | None = None
        self.end_reason = "ended"
        self.end_error: dict[str, Any] | None = None
        self.close_requested = False
        self.terminated = False
        self._logged_errors: set[str] = set()
        self.deadline: StepDeadline | None = None
        # Which envs may step: never reset ones may not; with autoreset disabled,
        # finished ones may not either until reset. Checked here, before any
        # worker steps, so that a refused step leaves every env as it was.
        self.needs_reset = np.ones(config.num_envs, dtype=np.bool_)
        self.all_reset = False  # not needs_reset.any(), kept so that steps need not ask
        self.done = np.zeros(config.num_envs, dtype=np.bool_)
        self.info_packer = InfoPacker(config.num_envs)
        # Results through shared memory (docs/protocol.md, "Shared memory"): the
        # file offered in WELCOME, its token, and whether the client took it.
        self.shared_path: Path | None = None
        self.share_token: str | None = None
        self.shared = False

    def run(self) -> None:
        try:
            self._setup()
        except Exception as exc:
            if isinstance(exc, NetgymError):
                error = exc
            else:  # netgym's own code, or the env's past its making: the traceback helps
                log.exception("session %s could not start", self.config.session_id)
                error = NetgymError(
                    f"starting a session of {self.config.env_id!r} failed inside the service: "
                    f"{type(exc).__name__}: {exc} (the envapi's log has the traceback)"
                )
            send_control(self.control, {"op": "failed", "error": error.to_dict()})
            self.end_reason = f"could not start: {error.message}"
            return
        # Started once the workers are forked: they need not be forked beside a thread.
        threading.Thread(
            target=end_when_the_envapi_is_gone,
            args=(self.control.fileno(), self.config.step_timeout_s),
            daemon=True,
        ).start()
        send_control(
            self.control,
            {
                "op": "ready",
                **self.spaces,
                "episode": self.episode,
                "action_meanings": self.action_meanings,
                "env_revision": self.env_revision,
            },
        )
        client = self._wait_for_client()
        if client is None:
            return
        self.client = client
        self._serve(client)

    def _setup(self) -> None:
        config = self.config
        serve_modules(config.env_modules)
        # Its instances outwait the session's own idle limit: the session ends them.
        serve_emulator(config.emulator_url, config.idle_timeout_s + INSTANCE_IDLE_MARGIN_S)
        make = partial(make_env, config.env_id, config.env_kwargs, config.wrappers)
        try:
            probe = make()
        except NetgymError:
            raise
        except Exception as exc:  # the env refuses its kwargs, say: the request's fault
            raise InvalidRequestError(
                f"making {config.env_id!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            # Envs that step in another process (emulators) are kept busy from
            # this process alone: sending to all, then collecting, beats workers.
            workers = 1 if isinstance(probe, SplitStepEnv) else config.workers
            observation_space, action_space = probe.observation_space, probe.action_space
            self.spaces = {
                "observation_space": pack_space(observation_space),
                "action_space": pack_space(action_space),
            }
            check_described_size(self.spaces)
            self.results = ResultLayout(observation_space, config.num_envs)
            check_step_size(self.results)
            self.episode = episode_spec(probe)
            self.action_meanings = action_meanings(probe)
            self.env_revision = env_revision(probe)
        finally:
            probe.close()
        self.actions = BatchLayout(action_space, config.num_envs, "action")
        self._memory, offset = self._results_memory(self.results.step_nbytes + self.actions.nbytes)
        memory = memoryview(self._memory)[offset:]
        self.result_buffer = memory[: self.results.step_nbytes]
        self.action_buffer = memory[self.results.step_nbytes :]
        self.action_leaves = self.actions.views(self.action_buffer)
        step_arrays = self.results.step_views(self.result_buffer)
        self.terminations, self.truncations = step_arrays.terminations, step_arrays.truncations
        self.pool = WorkerPool(
            make,
            config.num_envs,
            workers,
            self.results,
            self.actions,
            self.result_buffer,
            self.action_buffer,
            config.autoreset_mode,
            start_timeout_s=config.make_timeout_s,
        )

    def _results_memory(self, nbytes: int) -> tuple[mmap.mmap, int]:
        """Memory for results and actions, shared with the workers; and where it starts.

        With a shared-memory folder, a file there that a client on this host
        may map too (WELCOME offers it); otherwise anonymous memory.
        """
        if self.config.shared_memory_dir is not None:
            path = Path(self.config.shared_memory_dir) / self.config.session_id
            try:
                memory, self.share_token = create_results_file(path, nbytes)
            except OSError as exc:
                log.warning("session %s shares no memory: %r", self.config.session_id, exc)
            else:
                self.shared_path = path
                return memory, HEADER_BYTES
        return mmap.mmap(-1, nbytes), 0

    def _withdraw_shared_file(self) -> None:
        """Remove the results file: whoever will map it has done so by now."""
        if self.shared_path is not None:
            with contextlib.suppress(OSError):
                self.shared_path.unlink()
            self.shared_path = None

    def _wait_for_client(self) -> socket.socket | None:
        """The client's socket, and the step deadline's memory, from the main process."""
        self.control.settimeout(self.config.attach_timeout_s)
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.control, CONTROL_MESSAGE_BYTES, 2)
        except TimeoutError:
            self.end(
                f"no client attached within {self.config.attach_timeout_s:g} s (attach_timeout_s)"
            )
            self._refuse_late_clients()
            return None
        if not data or not fds:
            for fd in fds:
                os.close(fd)
            self.end("the service closed the session before a client attached")
            return None
        if len(fds) > 1:
            try:
                self.deadline = StepDeadline(fds[1])
            except (OSError, ValueError) as exc:  # steps go on, unwatched
                log.warning("session %s has no step deadline: %r", self.config.session_id, exc)
            finally:
                os.close(fds[1])
        return socket.socket(fileno=fds[0])

    def _refuse_late_clients(self) -> None:
        """Answer, with the reason this session ended, each client socket the main
        process handed over before it heard of the end ("ended" crossed its HELLO);
        the main process answers "ended" with "ended_seen", which comes after them."""
        self.control.settimeout(ENDED_SEEN_TIMEOUT_S)
        while True:
            try:
                _data, fds, _flags, _addr = socket.recv_fds(self.control, CONTROL_MESSAGE_BYTES, 2)
            except OSError:  # a timeout among them
                return
            if not fds:  # "ended_seen", or the main process has gone
                return
            for fd in fds[1:]:
                os.close(fd)
            with socket.socket(fileno=fds[0]) as late:
                late.settimeout(1.0)
                with contextlib.suppress(OSError):
                    send_value(late, MessageType.ERROR, self.end_error)

    def end(self, reason: str, error: NetgymError | None = None) -> None:
        """Record why the session ends, and tell the client when it can still hear."""
        self.end_reason = reason
        # Reasons read "was idle for ... and has ended", or say what happened.
        joint = " " if reason.startswith("was ") else " has ended: "
        notice = error or SessionEndedError(f"session {self.config.session_id}{joint}{reason}")
        self.end_error = notice.to_dict()  # what a client that asks is told, as this one is
        # Now, not after the workers stop (seconds, maybe): a HELLO meanwhile is
        # refused with this reason instead of being handed to a process that
        # no longer reads them.
        with contextlib.suppress(OSError):
            send_control(self.control, {"op": "ended", "reason": reason, "error": self.end_error})
        if self.client is not None:
            try:
                self.client.settimeout(1.0)
                send_value(self.client, MessageType.ERROR, notice.to_dict())
            except OSError:
                pass

    def shutdown(self) -> None:
        """Stop the workers, close the client, tell the main process why."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # already on the way out
        self._withdraw_shared_file()
        if self.pool is not None:
            # Ended by the service, which kills this process 5 s after asking:
            # give a worker busy in a step 1 s, not all of that.
            timeout_s = 1.0 if self.terminated else 5.0
            if self.deadline is not None:
                # An env's close() may hang as a step can: past this, the main
                # process kills the session, as it does a hung step.
                self.deadline.set(time.monotonic() + timeout_s + self.config.step_timeout_s)
            self.pool.close(timeout_s=timeout_s)
        with contextlib.suppress(OSError):
            send_control(
                self.control, {"op": "ended", "reason": self.end_reason, "error": self.end_error}
            )
        if self.client is not None:
            # CLOSED goes out only now, so that a client's close() returns once the
            # workers are gone and the service counts the session as ended.
            if self.close_requested:
                with contextlib.suppress(OSError):
                    send_frame(self.client, MessageType.CLOSED)
            self.client.close()

    def _client_gone(self) -> None:
        """The client closed its connection or vanished: nobody is left to tell."""
        self.client = None
        self.end_reason = "the client disconnected"

    def _send_error(self, client: socket.socket, error: NetgymError) -> bool:
        """Send an ERROR frame; False when the client is gone."""
        try:
            send_whole(client, MessageType.ERROR, [pack_error(error)])
        except OSError:
            self._client_gone()
            return False
        return True

    def _serve(self, client: socket.socket) -> None:
        config = self.config
        try:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.settimeout(config.idle_timeout_s)
            welcome = pack_value(
                {
                    "protocol": PROTOCOL_VERSION,
                    "session_id": config.session_id,
                    "env_id": config.env_id,
                    "num_envs": config.num_envs,
                    "autoreset_mode": config.autoreset_mode.value,
                    "observation_space": pack_space(self.results.observations.space),
                    "action_space": pack_space(self.actions.space),
                    "max_message_bytes": config.max_message_bytes,
                    "shared_memory": self._shared_memory_offer(),
                }
            )
            send_whole(client, MessageType.WELCOME, [welcome])
        except OSError:
            self._client_gone()
            return
        reader = FrameReader(client, config.max_message_bytes)
        while True:
            try:
                message_type, length = reader.header()
            except TimeoutError:
                self.end(f"was idle for {config.idle_timeout_s:g} s (idle_timeout_s) and has ended")
                return
            except ConnectionLostError as exc:
                if exc.details.get("received"):  # gone in the middle of a header
                    self.end(exc.message, exc)
                else:
                    self._client_gone()
                return
            except OSError:
                self._client_gone()
                return
            except ProtocolError as exc:
                self.end(f"received a bad frame header: {exc.message}", exc)
                return
            try:
                if not self._handle(client, reader, message_type, length):
                    return
            except (SessionEndedError, ConnectionLostError) as exc:
                self.end(exc.message, exc)
                return
            except ClientNotReading:
                self.end(
                    f"its client did not read a whole reply within {config.idle_timeout_s:g} s "
                    "(idle_timeout_s)"
                )
                return
            except TimeoutError:
                self.end(f"was idle for {config.idle_timeout_s:g} s in the middle of a message")
                return
            except NetgymError as exc:
                if isinstance(exc, EnvError):
                    self._log_env_error(exc)
                if not self._send_error(client, exc):
                    return
            except OSError:  # sending a reply failed: the client is gone
                self._client_gone()
                return
            except Exception as exc:
                log.exception("session %s failed", config.session_id)
                self.end(
                    f"failed inside the service: {exc!r}",
                    NetgymError(f"session {config.session_id} failed inside the service: {exc!r}"),
                )
                return

    def _log_env_error(self, error: EnvError) -> None:
        """Log an env's error (a game script's, say: its author reads the service's log,
        docker compose logs envapi), each one once, the first ``LOGGED_ENV_ERRORS``."""
        message = shortened(error.message)
        if message in self._logged_errors or len(self._logged_errors) > LOGGED_ENV_ERRORS:
            return
        self._logged_errors.add(message)
        config = self.config
        if len(self._logged_errors) > LOGGED_ENV_ERRORS:
            log.warning("session %s: more env errors, not logged", config.session_id)
        else:
            log.warning("session %s (%s): %s", config.session_id, config.env_id, message)

    def _shared_memory_offer(self) -> dict[str, Any] | None:
        if self.shared_path is None:
            return None
        return {
            "path": str(self.shared_path),
            "token": self.share_token,
            "nbytes": self.results.step_nbytes,
        }

    def _handle(
        self, client: socket.socket, reader: FrameReader, message_type: MessageType, length: int
    ) -> bool:
        """Answer one message; False when the session is over."""
        self._withdraw_shared_file()
        if message_type == MessageType.STEP:
            if length != self.actions.nbytes:
                _discard(reader, length)
                raise ProtocolError(
                    f"a STEP body has {length} bytes, but {self.config.num_envs} actions of "
                    f"{self.actions.space} take {self.actions.nbytes}",
                    details={"length": length, "expected": self.actions.nbytes},
                )
            reader.body_into(self.action_buffer)
            self._check_steppable()
            self.actions.check(self.action_leaves)
            assert self.pool is not None
            try:
                with self._step_deadline():
                    infos = self.pool.step(self.config.step_timeout_s)
            finally:
                # Envs that stepped wrote their flags, even when another one failed.
                if self.config.autoreset_mode == AutoresetMode.DISABLED:
                    self.done = self.terminations | self.truncations
            info = self._pack_info(infos)
            parts: list[Buffer] = [info] if self.shared else [self.result_buffer, info]
            send_whole(client, MessageType.STEP_RESULT, parts)
            return True
        body = bytearray(length)
        reader.body_into(memoryview(body))
        if message_type == MessageType.RESET:
            self._reset(client, body)
        elif message_type == MessageType.PING:
            send_whole(client, MessageType.PONG, [body])
        elif message_type == MessageType.SHARE:
            self._share(client, body)
        elif message_type == MessageType.CLOSE:
            self.close_requested = True
            self.end_reason = "closed by the client"
            return False
        else:
            raise ProtocolError(f"a client does not send {message_type.name} frames after HELLO")
        return True

    def _share(self, client: socket.socket, body: bytearray) -> None:
        """The client mapped the offered file: send results through it from now on."""
        request = unpack_value(body) if body else {}
        token = request.get("token") if isinstance(request, dict) else None
        if self.share_token is None or not isinstance(token, str):
            raise InvalidRequestError(
                "this session offered no shared memory (WELCOME's shared_memory is null)"
                if self.share_token is None
                else 'a SHARE body is {"token": the token WELCOME\'s shared_memory gave}'
            )
        if not hmac.compare_digest(token.encode(errors="surrogatepass"), self.share_token.encode()):
            raise InvalidRequestError("the token in SHARE is not the one WELCOME offered")
        self.shared = True
        send_whole(client, MessageType.SHARED, [])

    def _check_steppable(self) -> None:
        """Refuse a step, before any env moves, when some env may not step.

        Raises:
            SessionStateError: naming the first such env and what to do.
        """
        if not self.all_reset:
            index = int(np.flatnonzero(self.needs_reset)[0])
            raise SessionStateError(f"env {index} was never reset: call reset() before step()")
        if self.config.autoreset_mode == AutoresetMode.DISABLED and self.done.any():
            index = int(np.flatnonzero(self.done)[0])
            raise SessionStateError(
                "the episode has ended (terminated or truncated): call reset() before step()"
                if self.config.num_envs == 1
                else f"env {index} is done and autoreset is disabled: reset it first "
                "(options={'reset_mask': mask})",
                details={"env_index": index},
            )

    @contextlib.contextmanager
    def _step_deadline(self) -> Iterator[None]:
        """Publish the deadline of the reset or step under way to the main process."""
        if self.deadline is None:
            yield
            return
        self.deadline.set(time.monotonic() + self.config.step_timeout_s)
        try:
            yield
        finally:
            self.deadline.clear()

    def _pack_info(self, infos: EnvInfos) -> bytes:
        """The vector info of a reset or step, encoded.

        Raises:
            ProtocolError: when an env's info holds what a value cannot carry;
                the session goes on.
        """
        advice = (
            "the envs did step or reset, but this info is lost; wrap the env so that its "
            "info holds only numbers, strings, bytes, numeric arrays, lists and dicts"
        )
        try:
            return self.info_packer.pack(infos)
        except ProtocolError as exc:
            raise ProtocolError(
                f"the envs' info cannot be sent: {exc.message}; {advice}", details=exc.details
            ) from None
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise ProtocolError(
                f"the envs' info cannot be sent: {type(exc).__name__}: {exc}; {advice}"
            ) from None

    def _reset(self, client: socket.socket, body: bytearray) -> None:
        request = unpack_value(body) if body else {}
        if not isinstance(request, dict):
            raise ProtocolError(f"a RESET body is a dict, got {type(request).__name__}")
        if unknown := sorted(map(str, set(request) - {"seed", "options"})):
            raise InvalidRequestError(
                f"a RESET body has seed and options only, not {', '.join(unknown)} "
                "(reset arguments for the env go in options)"
            )
        seeds = _seeds(request.get("seed"), self.config.num_envs)
        options = request.get("options")
        if options is not None and not isinstance(options, dict):
            raise InvalidRequestError(f"reset options must be a dict, got {type(options).__name__}")
        mask = None
        if options and "reset_mask" in options:
            options = dict(options)
            num_envs = self.config.num_envs
            wanted = f"options['reset_mask'] must be a bool array of shape ({num_envs},)"
            try:
                mask = np.asarray(options.pop("reset_mask"))
            except (ValueError, TypeError) as exc:  # a ragged list, say
                raise InvalidRequestError(f"{wanted}: {exc}") from None
            if mask.dtype != np.bool_ or mask.shape != (num_envs,):
                raise InvalidRequestError(f"{wanted}, got {mask.dtype} {mask.shape}")
            if not mask.any():
                raise InvalidRequestError(
                    "options['reset_mask'] selects no env: set at least one True, "
                    f"got {mask.tolist()}"
                )
        assert self.pool is not None
        with self._step_deadline():
            infos = self.pool.reset(seeds, options, mask, self.config.step_timeout_s)
        selected = slice(None) if mask is None else mask
        self.needs_reset[selected] = False
        self.all_reset = not self.needs_reset.any()
        self.done[selected] = False
        # A step that fails part-way leaves unstepped envs' flags as they were: a
        # reset env's must not make it look done then.
        self.terminations[selected] = False
        self.truncations[selected] = False
        info = self._pack_info(infos)
        observations = self.result_buffer[: self.results.reset_nbytes]
        parts: list[Buffer] = [info] if self.shared else [observations, info]
        send_whole(client, MessageType.RESET_RESULT, parts)


def _seeds(seed: Any, num_envs: int) -> list[int | None]:
    """Gymnasium's vector convention: None, one int (env i gets seed + i), or a list."""
    if seed is None:
        return [None] * num_envs
    if _is_int(seed) and seed >= 0:
        return [int(seed) + i for i in range(num_envs)]
    if (
        isinstance(seed, list)
        and len(seed) == num_envs
        and all(s is None or (_is_int(s) and s >= 0) for s in seed)
    ):
        return [None if s is None else int(s) for s in seed]
    raise InvalidRequestError(
        f"seed must be None, an int 0 or more, or a list of {num_envs} such ints or None; "
        f"got {seed!r}"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _discard(reader: FrameReader, length: int) -> None:
    chunk = bytearray(min(length, 1 << 20))
    view = memoryview(chunk)
    while length > 0:
        count = min(length, len(chunk))
        reader.body_into(view[:count])
        length -= count
