"""uvicorn's access log, without the lines of the requests that poll a service."""

from __future__ import annotations

import logging

# Docker's healthchecks (every 5 s) and the envapi's reads of the emulator's games.
POLLED_PATHS = frozenset({"/v1/health", "/v1/games"})


class WithoutPolls(logging.Filter):
    """Drops the access-log lines of successful GETs of ``POLLED_PATHS``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args  # uvicorn's: client, method, path, HTTP version, status
        if isinstance(args, tuple) and len(args) == 5:
            _, method, path, _, status = args
            if method == "GET" and path in POLLED_PATHS and status in range(200, 300):
                return False
        return True


def quiet_polls() -> None:
    """Leave polls out of uvicorn's access log: in Compose, a line every few seconds
    would bury what matters there (a game script's ``print()`` lines, errors)."""
    logging.getLogger("uvicorn.access").addFilter(WithoutPolls())
