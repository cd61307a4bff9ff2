"""``RemoteVectorEnv``: a Gymnasium ``VectorEnv`` whose envs live in an envapi session."""

from __future__ import annotations

import contextlib
import enum
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.envs.registration import EnvSpec
from gymnasium.error import Error as GymnasiumError
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from netgym.client.arguments import (
    NO_RENDERING,
    NOT_RENDERED,
    WIRE_MODES,
    as_json,
    autoreset_mode_of,
    is_int,
    not_an_argument,
    seconds,
    server_address,
    wire_seed,
)
from netgym.client.connection import DataConnection
from netgym.client.rest import RestClient
from netgym.errors import (
    ConnectionLostError,
    InvalidRequestError,
    NetgymError,
    NotPicklableError,
    SessionEndedError,
    SessionNotFoundError,
    SessionStateError,
    error_from_dict,
)
from netgym.protocol import BatchLayout, MessageType, ResultLayout, unpack_space
from netgym.protocol.frames import HEADER_SIZE, frame_buffer

DEFAULT_TIMEOUT_S = 120.0  # for any one reply on the data connection
# The server stops a session's workers within 5 s; a DELETE waits a little longer.
_CLOSE_TIMEOUT_S = 15.0


class _State(enum.Enum):
    READY = "ready"
    WAITING_STEP = "waiting for a step result"
    DROPPED = "dropped"  # the session ended, or a call broke off: the connection is gone
    CLOSED = "closed"


# The errors that a call after a drop raises again as their own class.
_KEPT_WHEN_DROPPED = (SessionEndedError, ConnectionLostError)


@dataclass(frozen=True)
class _Drop:
    """What dropped an env's connection: the exception's class, message and details,
    not the exception (whose traceback would keep the caller's frames alive)."""

    kind: type[BaseException]
    message: str | None  # None: not a netgym error (Ctrl-C, a bug)
    details: dict[str, Any]

    @staticmethod
    def of(cause: BaseException) -> _Drop:
        if isinstance(cause, NetgymError):
            return _Drop(type(cause), cause.message, cause.details)
        return _Drop(type(cause), None, {})


class RemoteVectorEnv(VectorEnv[Any, Any, Any]):
    """``num_envs`` copies of an env, served by an envapi and stepped as one batch.

    Observations, rewards, terminations, truncations and infos follow
    Gymnasium's vector API with the autoreset mode given (``SAME_STEP`` by
    default: a finished env's last observation is in ``info["final_obs"]``).

    Args:
        env_id: an id the server lists at ``GET /v1/envs``, e.g. ``"ALE/Pong-v5"``.
        num_envs: copies stepped together on the server, in parallel across its cores.
        url: the envapi, default ``$NETGYM_URL`` or ``http://127.0.0.1:8000``.
        token: the access token, default ``$NETGYM_TOKEN``.
        env_kwargs: keyword arguments of ``gymnasium.make`` on the server.
        wrappers: server-side wrappers, names or ``{"name", "kwargs"}``, e.g.
            ``["atari", {"name": "frame_stack", "kwargs": {"stack_size": 4}}]``.
        autoreset_mode: Gymnasium's autoreset mode.
        timeout_s: how long to wait for any one reply before raising.
        open_timeout_s: how long opening the session may take (the server makes
            the envs first, which may start emulators); default
            ``max(timeout_s, 180)``.
        shared_memory: on the envapi's host, read results from the session's
            shared memory rather than the socket (faster); elsewhere results
            come through the socket whatever this says.
        render_mode: refused with a reason: the envs run on a server with no screen.

    Any other keyword argument is refused, with the ``env_kwargs`` that pass it to
    the env (where ``gymnasium.make(env_id, **kwargs)`` takes them as they are).
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int = 1,
        *,
        url: str | None = None,
        token: str | None = None,
        env_kwargs: dict[str, Any] | None = None,
        wrappers: list[str | dict[str, Any]] | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        open_timeout_s: float | None = None,
        shared_memory: bool = True,
        render_mode: str | None = None,
        **env_kwargs_given_as_arguments: Any,
    ) -> None:
        if render_mode is not None:
            raise InvalidRequestError(NO_RENDERING)
        if env_kwargs_given_as_arguments:
            raise InvalidRequestError(not_an_argument(env_kwargs_given_as_arguments))
        if not is_int(num_envs) or num_envs < 1:
            raise InvalidRequestError(
                f"num_envs={num_envs!r}: give a whole number of envs, 1 or more"
            )
        num_envs = int(num_envs)
        timeout_s = seconds("timeout_s", timeout_s)
        if open_timeout_s is not None:
            open_timeout_s = seconds("open_timeout_s", open_timeout_s)
        self.url, token = server_address(url, token)
        mode = autoreset_mode_of(autoreset_mode)
        self._rest = RestClient(self.url, token, timeout_s=max(timeout_s, 180.0))
        reply = self._rest.call(
            "POST",
            "/v1/sessions",
            {
                "env_id": env_id,
                "num_envs": num_envs,
                "env_kwargs": as_json("env_kwargs", env_kwargs or {}),
                "wrappers": as_json(
                    "wrappers", list(wrappers) if isinstance(wrappers, tuple) else wrappers or []
                ),
                "autoreset_mode": WIRE_MODES[mode],
            },
            timeout_s=open_timeout_s,
            expect=("session_id", "data_port", "observation_space", "action_space"),
        )
        self.session_id: str = reply["session_id"]
        host = urllib.parse.urlsplit(self.url).hostname or "127.0.0.1"
        try:
            self._connection = DataConnection(
                host, int(reply["data_port"]), self.session_id, token, timeout_s, shared_memory
            )
        except BaseException:  # Ctrl-C too: the session would wait for its attach timeout
            self._close_session()
            raise
        try:
            self._describe(env_id, num_envs, mode, reply)
        except BaseException:  # spaces this client cannot read, say: free the session
            self._connection.close()
            self._close_session()
            self.closed = True
            raise
        given = {
            "env_kwargs": env_kwargs,
            "wrappers": wrappers,
            "timeout_s": None if timeout_s == DEFAULT_TIMEOUT_S else timeout_s,
            "open_timeout_s": open_timeout_s,
            "shared_memory": None if shared_memory else False,
        }
        self.spec = _spec(env_id, token, self.url, given, self.episode_spec)
        self._state = _State.READY
        self._in_call = threading.Lock()  # one thread in a call at a time
        self._caller = 0  # the thread that took _in_call last
        self._session_ended = False  # known to have ended on the server
        self._dropped_by: _Drop | None = None  # why the state is DROPPED
        self._server_silent = False  # it did not answer when asked why the connection broke
        self._closed = False

    def _describe(
        self, env_id: str, num_envs: int, mode: AutoresetMode, reply: dict[str, Any]
    ) -> None:
        """Spaces and layouts from the server's description of the session."""
        self.env_id = env_id
        self.num_envs = num_envs
        self.single_observation_space = unpack_space(reply["observation_space"])
        self.single_action_space = unpack_space(reply["action_space"])
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = {"autoreset_mode": mode}
        # What the server's env.spec says of the episodes (absent from older servers).
        self.episode_spec: dict[str, Any] = {
            key: reply.get(key) for key in ("max_episode_steps", "reward_threshold")
        }
        self._action_meanings: list[str] | None = reply.get("action_meanings")
        # The version of an NES game (its files' digest); None for envs that have none.
        self.env_revision: str | None = reply.get("env_revision")
        self._results = ResultLayout(self.single_observation_space, num_envs)
        self._actions = BatchLayout(self.single_action_space, num_envs, "action")
        # A STEP frame, sent as is once the actions are written into it.
        self._step_frame = frame_buffer(MessageType.STEP, self._actions.nbytes)
        self._step_actions = self._actions.views(self._step_frame, HEADER_SIZE)

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | np.ndarray | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Reset every env (or those ``options["reset_mask"]`` selects).

        ``seed`` is None, an int (Python or numpy: env ``i`` gets ``seed + i``)
        or a sequence of ``num_envs`` ints or Nones (a list, a tuple, an array).
        """
        self._enter(_State.READY, "reset")
        try:
            seeds = wire_seed(seed)
            if isinstance(seeds, int):
                super().reset(seed=seeds)
            leaves, info = self._call(self._connection.reset, seeds, options, self._results)
            return self._results.observations.assemble(leaves), info
        finally:
            self._in_call.release()

    def step_async(self, actions: Any) -> None:
        """Send the actions; ``step_wait`` collects the results."""
        self._send_step(actions, "step_async")

    def _send_step(self, actions: Any, call: str) -> None:
        self._enter(_State.READY, call)
        try:
            self._actions.write(self._step_actions, actions)
            self._call(self._connection.send_prepared, self._step_frame)
            self._state = _State.WAITING_STEP
        finally:
            self._in_call.release()

    def step_wait(self) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """The results of the actions ``step_async`` sent."""
        return self._wait_step("step_wait")

    def _wait_step(
        self, call: str
    ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        self._enter(_State.WAITING_STEP, call)
        try:
            self._state = _State.READY
            arrays, info = self._call(self._connection.receive_step, self._results)
        finally:
            self._in_call.release()
        observations = self._results.observations.assemble(arrays.observations)
        return observations, arrays.rewards, arrays.terminations, arrays.truncations, info

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env once."""
        self._send_step(actions, "step")
        return self._wait_step("step")

    def render(self) -> None:
        raise NotImplementedError(NOT_RENDERED)

    def get_action_meanings(self) -> list[str] | None:
        """What each action does, as the server's env says (ALE's and NES games' names,
        e.g. ``["NOOP", "FIRE", ...]``); None for an env that names none."""
        return None if self._action_meanings is None else list(self._action_meanings)

    def set_timeout(self, timeout_s: float) -> None:
        """Wait this long for any one reply from now on (``timeout_s`` of the constructor)."""
        timeout_s = seconds("timeout_s", timeout_s)
        if self._state in (_State.CLOSED, _State.DROPPED):  # its connection is gone
            self._check(_State.READY, "set_timeout")  # raises as any call would
        self._connection.set_timeout(timeout_s)

    def ping(self) -> None:
        """One empty round trip to the session process (for latency checks)."""
        self._enter(_State.READY, "ping")
        try:
            self._call(self._connection.ping)
        finally:
            self._in_call.release()

    def close_extras(self, **kwargs: Any) -> None:
        """End the session on the server: CLOSE on the data connection, else DELETE.

        Called from another thread during a call, it wakes that call, which
        raises ``SessionStateError``, and ends the session by DELETE.
        """
        if self._closed:
            return
        self._closed = True
        if not self._in_call.acquire(blocking=False):
            self._connection.shutdown()
            # From a signal handler in the calling thread, the call goes on once it returns.
            same_thread = self._caller == threading.get_ident()
            if same_thread or not self._in_call.acquire(timeout=_CLOSE_TIMEOUT_S):
                self._state = _State.CLOSED
                self._connection.abort()
                self._close_session()
                return
            self._connection.abort()  # the call was cut short: the stream is out of step
        try:
            self._state = _State.CLOSED
            if not self._connection.closed and self._connection.close():
                return  # the server answered CLOSED: the session has ended
            if not self._session_ended and not self._server_silent:
                self._close_session()
        finally:
            self._in_call.release()

    def _close_session(self) -> None:
        # It may have ended already, or the server is gone: nothing is left to free then.
        # A hung server ends the session itself once it is idle past its idle_timeout_s.
        with contextlib.suppress(NetgymError):
            self._rest.call("DELETE", f"/v1/sessions/{self.session_id}", timeout_s=_CLOSE_TIMEOUT_S)

    def _enter(self, wanted: _State, call: str) -> None:
        """Start a call: this thread holds ``_in_call`` when it returns.

        Raises:
            SessionStateError: another thread is in a call on this env, or the
                env is not in the state ``call`` needs.
        """
        if not self._in_call.acquire(blocking=False):
            if self._closed:  # close() from another thread holds it while it closes
                raise SessionStateError(
                    f"cannot call {call}(): this env was closed by another thread; make a new one"
                )
            raise SessionStateError(
                f"cannot call {call}(): another thread is in a call on this env; an env "
                "serves one thread at a time (make one env per thread)"
            )
        self._caller = threading.get_ident()
        try:
            self._check(wanted, call)
        except BaseException:
            self._in_call.release()
            raise

    def _check(self, wanted: _State, call: str) -> None:
        if self._state == _State.CLOSED:
            raise SessionStateError(f"cannot call {call}(): this env is closed; make a new one")
        if self._state == _State.DROPPED:
            raise self._dropped_error(call)
        if self._state != wanted:
            raise SessionStateError(
                f"cannot call {call}() while the env is {self._state.value}"
                + (": call step_wait() first" if self._state == _State.WAITING_STEP else "")
            )

    def _dropped_error(self, call: str) -> NetgymError:
        """Why no call can be made any more: what dropped the connection, again.

        A session's end or a lost connection is raised as its own class again;
        anything else as ``ConnectionLostError``: every one of them is an error that
        ``netgym.sb3.ReconnectingVecEnv`` opens a new session for.
        """
        cause = self._dropped_by
        advice = "make a new env (netgym.sb3.ReconnectingVecEnv does that itself)"
        if cause is not None and cause.message is not None:
            what = "session has ended" if self._session_ended else "connection broke"
            message = f"cannot call {call}(): this env's {what} ({cause.message}); {advice}"
            kind: type[NetgymError] = ConnectionLostError
            if issubclass(cause.kind, _KEPT_WHEN_DROPPED):
                kind = cause.kind
            return kind(message, details=dict(cause.details))
        what = cause.kind.__name__ if cause is not None else "an error"
        return ConnectionLostError(
            f"cannot call {call}(): an earlier call was cut short by {what}, and this env's "
            "connection went with it (part of a request may have gone, or a reply be left "
            f"unread); {advice}"
        )

    def _drop(self, cause: BaseException) -> None:
        """The connection is gone for good, because of ``cause``."""
        self._state = _State.DROPPED
        self._dropped_by = _Drop.of(cause)
        self._connection.abort()

    def _call(self, function: Any, *args: Any) -> Any:
        try:
            return self._call_once(function, *args)
        except Exception as exc:
            if self._closed:  # close() from another thread woke this call
                raise SessionStateError(
                    "this env was closed by another thread during the call; make a new one"
                ) from exc
            raise

    def _call_once(self, function: Any, *args: Any) -> Any:
        try:
            return function(*args)
        except ConnectionLostError as exc:
            if self._closed:
                raise  # no need to ask the server why: _call says
            # A reply may still be on its way (after our own timeout): the stream is
            # out of step for good. close() then DELETEs the session, unless it ended.
            self._drop(exc)
            explained = self._explain(exc)
            self._dropped_by = _Drop.of(explained)
            raise explained from None
        except SessionEndedError as exc:  # worker_crashed and worker_timeout too
            self._session_ended = True
            self._drop(exc)
            raise
        except NetgymError as exc:  # an answer, read whole: the stream is in step
            if type(exc) is NetgymError and exc.code == "internal":
                # The session failed inside the service, which ended it.
                self._session_ended = True
                self._drop(exc)
            raise
        except BaseException as exc:
            # Ctrl-C (or a bug) in the middle of a request: part of a frame may be
            # sent or left unread, so no later reply could be trusted.
            self._drop(exc)
            raise

    def _explain(self, exc: ConnectionLostError) -> NetgymError:
        """Ask the server why the connection broke; the answer is the error to raise."""
        # A broken connection: the session may be ending, and its end says why. A
        # reply that never came: it is still running, hung or slow; ask once.
        timed_out = exc.details.get("timed_out") is True
        deadline = time.monotonic() + (0.0 if timed_out else 3.0)
        while True:
            try:
                # A hung envapi must not hold the error up for the REST timeout.
                status = self._rest.call(
                    "GET",
                    f"/v1/sessions/{self.session_id}",
                    timeout_s=3.0 if timed_out else max(deadline - time.monotonic(), 0.5),
                    expect=("state",),
                )
            except SessionNotFoundError:
                self._session_ended = True
                return ConnectionLostError(
                    f"{exc.message}; the envapi at {self.url} no longer knows session "
                    f"{self.session_id} (it restarted, or forgot the session long ago)"
                )
            except NetgymError as rest_error:
                self._server_silent = True
                return ConnectionLostError(
                    f"{exc.message}; the envapi at {self.url} does not answer either: "
                    f"{rest_error.message}"
                )
            # The server may not have reaped the session process yet.
            if status.get("state") == "ended":
                self._session_ended = True
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if status.get("end_error"):
            return error_from_dict(status["end_error"])
        if status.get("state") != "ended" and timed_out:
            reason = (
                f"it is still {status.get('state')} on the server, busy or hung (an env "
                "stepping slowly?): raise timeout_s for a slow env, or the envapi ends a hung "
                "step after its step_timeout_s"
            )
        else:
            reason = status.get("end_reason") or f"it is {status.get('state')}"
        return ConnectionLostError(f"{exc.message}; session {self.session_id}: {reason}")

    def __enter__(self) -> RemoteVectorEnv:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteVectorEnv({self.env_id!r}, num_envs={self.num_envs}, url={self.url!r})"

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise not_picklable(self)


def not_picklable(env: Any) -> NotPicklableError:
    """What pickling or copying a remote env raises."""
    return NotPicklableError(
        f"{env!r} cannot be pickled or copied: it is a live session on the envapi, and its "
        "connection cannot travel. To use the env in another process, make it there: give "
        "a function that calls netgym.make(...) (as AsyncVectorEnv and SB3's SubprocVecEnv "
        "take), not the env"
    )


class _NewSession:
    """The entry point of a remote env's spec: another session of one env of the same id.

    It keeps the token, out of the spec's kwargs, its printout and its JSON (no
    dataclass, which ``EnvSpec.to_json`` would write out field by field: that
    refuses a callable entry point instead).
    """

    def __init__(self, env_id: str, token: str | None) -> None:
        self.env_id = env_id
        self.token = token

    def __call__(self, **kwargs: Any) -> Any:
        from netgym.client.env import RemoteEnv  # which is built on this module

        return RemoteEnv(self.env_id, token=self.token, **kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _NewSession) and (other.env_id, other.token) == (
            self.env_id,
            self.token,
        )

    def __hash__(self) -> int:
        return hash((self.env_id, self.token))

    def __repr__(self) -> str:
        return f"<a new netgym session of {self.env_id!r}>"


def _spec(
    env_id: str,
    token: str | None,
    url: str,
    given: dict[str, Any],
    episode_spec: dict[str, Any],
) -> EnvSpec | None:
    """The ``spec`` of a remote env, or of each env of a vector one, as Gymnasium's
    ``make_vec`` gives: ``gymnasium.make(spec)`` opens one more env like it."""
    kwargs = {key: value for key, value in given.items() if value is not None}
    try:
        return EnvSpec(
            id=env_id,
            entry_point=_NewSession(env_id, token),
            kwargs={**kwargs, "url": url},
            **episode_spec,
        )
    except GymnasiumError:  # an id outside Gymnasium's pattern: no spec
        return None
