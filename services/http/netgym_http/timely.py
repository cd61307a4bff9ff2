"""uvicorn's HTTP protocol with a deadline for each request to arrive whole.

uvicorn closes a keep-alive connection that stays idle after a response, but
not one that never finishes sending its request: a few thousand connections
that send half a header (and need no token to do it) would hold the service's
file descriptors until it could accept no one. Here a request must have
arrived, headers and body, within ``timeout_s`` of its connection or of the
connection's last response; a request that has arrived may take as long as
its work takes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

REQUEST_ARRIVAL_TIMEOUT_S = 30.0


class _ArrivalDeadline(asyncio.Protocol):
    """Mixed into uvicorn's protocol (h11's or httptools'), which gives the rest."""

    timeout_s = REQUEST_ARRIVAL_TIMEOUT_S
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any  # the request in hand (uvicorn's RequestResponseCycle), or None
    _arrival: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._expect_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._expect_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _expect_request(self) -> None:
        self._cancel()
        self._arrival = self.loop.call_later(self.timeout_s, self._close_unless_arrived)

    def _cancel(self) -> None:
        if self._arrival is not None:
            self._arrival.cancel()
            self._arrival = None

    def _close_unless_arrived(self) -> None:
        self._arrival = None
        cycle = self.cycle
        arrived = cycle is not None and not cycle.response_complete and not cycle.more_body
        if not arrived and not self.transport.is_closing():
            self.transport.close()


def timely_http(timeout_s: float = REQUEST_ARRIVAL_TIMEOUT_S) -> type[asyncio.Protocol]:
    """The protocol class for ``uvicorn.run(http=...)``."""
    return type(
        "TimelyHTTPProtocol", (_ArrivalDeadline, AutoHTTPProtocol), {"timeout_s": timeout_s}
    )
