"""How a session process ends: SIGTERM held back while a reply frame goes out,
and the envapi's end noticed without a signal."""

from __future__ import annotations

import os
import select
import signal
import socket
import threading
import time
from types import FrameType

from netgym.protocol import MessageType
from netgym.protocol.frames import Buffer, send_frame

# With the envapi gone, how long past a step's deadline a session that does not
# end (stuck in an env's native code) lives before it kills itself.
STUCK_GRACE_S = 10.0


class Terminated(BaseException):
    """SIGTERM arrived: the service is closing this session.

    A BaseException, as KeyboardInterrupt is, so that no ``except Exception``
    on its way out (the env's own, the worker pool's) can swallow it.
    """


class ClientNotReading(TimeoutError):
    """A reply could not go out whole within the idle timeout: the client reads
    nothing, or too slowly."""


class FrameGuard:
    """Whether a reply frame is going out, and whether SIGTERM came meanwhile."""

    sending = False
    pending = False


def send_whole(client: socket.socket, message_type: MessageType, parts: list[Buffer]) -> None:
    """``send_frame``, with SIGTERM held back until the frame is out.

    A frame cut short, then the ERROR that ``end`` sends, would garble the
    client's stream.
    """
    FrameGuard.sending = True
    try:
        send_frame(client, message_type, parts)
    except TimeoutError:
        raise ClientNotReading from None
    finally:
        FrameGuard.sending = False
        if FrameGuard.pending:  # the frame is out (or failed): now SIGTERM takes effect
            FrameGuard.pending = False
            raise Terminated


def raise_terminated(signum: int, frame: FrameType | None) -> None:
    if FrameGuard.sending:
        FrameGuard.pending = True
        return
    raise Terminated


envapi_gone = threading.Event()


def end_when_the_envapi_is_gone(control_fd: int, step_timeout_s: float) -> None:
    """A thread: end this process once the envapi's end of the control socket closes.

    A killed envapi sends its sessions no signal: their parent is the forkserver,
    which outlives it (every session holds its "alive" pipe). SIGTERM ends the
    session in order; a main thread stuck in an env's native code, which the
    envapi would have killed, is killed from here past the step's deadline.
    """
    poller = select.poll()
    poller.register(control_fd, getattr(select, "POLLRDHUP", 0))  # a close gives POLLHUP too
    while True:
        for _fd, events in poller.poll():
            if events & select.POLLNVAL:  # the session closed it itself: it is ending
                return
            if events & (getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR):
                envapi_gone.set()
                main = threading.main_thread().ident
                assert main is not None
                signal.pthread_kill(main, signal.SIGTERM)
                time.sleep(step_timeout_s + STUCK_GRACE_S)
                os.kill(os.getpid(), signal.SIGKILL)
