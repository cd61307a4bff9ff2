"""Every error netgym raises, on the client and in the services.

Each class has a stable ``code``: the string that travels in an ERROR frame or
a REST error body, so that the client raises the same class the server meant.
"""

from __future__ import annotations

from typing import Any, ClassVar


class NetgymError(Exception):
    """Base class of every netgym error."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The error as it travels: ``{"code", "message", "details"}``."""
        return {"code": self.code, "message": self.message, "details": self.details}


class ProtocolError(NetgymError):
    """A message broke the wire format: bad header, unknown type, wrong length."""

    code = "protocol"
    http_status = 400


class ProtocolVersionError(ProtocolError):
    """Client and server speak protocol versions that cannot talk to each other."""

    code = "protocol_version"


class MessageTooLargeError(ProtocolError):
    """A message is larger than the server's ``max_message_bytes``."""

    code = "message_too_large"
    http_status = 413


class AuthenticationError(NetgymError):
    """The access token is missing or wrong."""

    code = "unauthorized"
    http_status = 401


class UnknownEnvError(NetgymError):
    """The server serves no environment of that id."""

    code = "unknown_env"
    http_status = 404


class InvalidRequestError(NetgymError):
    """A request's fields are invalid: a bad wrapper name, num_envs out of range."""

    code = "invalid_request"
    http_status = 422


class InvalidActionError(NetgymError):
    """An action is not in the action space; the session stays usable."""

    code = "invalid_action"
    http_status = 422


class LimitExceededError(NetgymError):
    """A server limit was reached: too many sessions, too many envs in one."""

    code = "limit_exceeded"
    http_status = 429


class SessionNotFoundError(NetgymError):
    """No session of that id exists (it never did, or it has ended)."""

    code = "session_not_found"
    http_status = 404


class SessionStateError(NetgymError):
    """A call came out of order: step before reset, attach twice."""

    code = "session_state"
    http_status = 409


class SessionEndedError(NetgymError):
    """The session is over: closed, timed out, or its worker died."""

    code = "session_ended"
    http_status = 410


class WorkerCrashedError(SessionEndedError):
    """A worker process of the session died (crash, segfault, killed)."""

    code = "worker_crashed"


class WorkerTimeoutError(SessionEndedError):
    """A worker did not answer within the step timeout (a hung env)."""

    code = "worker_timeout"


class EnvError(NetgymError):
    """The environment's own code raised; ``details["traceback"]`` has the trace."""

    code = "env_error"


class UnsupportedSpaceError(NetgymError):
    """A Gymnasium space the protocol cannot carry (Text, Graph, Sequence...)."""

    code = "unsupported_space"


class ConnectionLostError(NetgymError):
    """The connection to the server broke or the server stopped answering."""

    code = "connection_lost"


class ReconnectFailedError(ConnectionLostError):
    """A ``ReconnectingVecEnv`` lost its session and could not open a new one."""

    code = "reconnect_failed"


class NotPicklableError(NetgymError, TypeError):
    """A remote env was pickled or copied: a live session cannot travel (a TypeError,
    as pickle's own refusals are)."""

    code = "not_picklable"


class ServerUnavailableError(NetgymError):
    """The server could not be reached at all."""

    code = "server_unavailable"
    http_status = 503


class PeerError(NetgymError):
    """An error whose code this side does not know (a service's own, or a newer
    version's). It keeps that code as its ``code``, so it travels on unchanged
    and is never taken for an ``internal`` failure."""

    def __init__(self, code: str, message: str, *, details: dict[str, Any] | None = None):
        super().__init__(message, details=details)
        self.__dict__["code"] = code  # this error's own, over the class's

    def __reduce__(self) -> tuple[Any, ...]:  # pickled (AsyncVectorEnv) and copied whole
        return (_peer_error, (self.code, self.message, self.details))


def _peer_error(code: str, message: str, details: dict[str, Any]) -> PeerError:
    return PeerError(code, message, details=details)


_BY_CODE: dict[str, type[NetgymError]] = {}


def _register(cls: type[NetgymError]) -> None:
    if cls is PeerError:  # it stands for codes this side does not know
        return
    _BY_CODE[cls.code] = cls
    for sub in cls.__subclasses__():
        _register(sub)


_register(NetgymError)


def error_from_dict(data: dict[str, Any]) -> NetgymError:
    """Rebuild the error a peer sent; an unknown code becomes a ``PeerError``."""
    code = str(data.get("code", "internal"))
    message = str(data.get("message", "the server reported an error without a message"))
    details = data.get("details")
    details = details if isinstance(details, dict) else None
    cls = _BY_CODE.get(code)
    if cls is None:
        return PeerError(code, message, details=details)
    return cls(message, details=details)
