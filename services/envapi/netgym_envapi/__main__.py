"""``netgym-envapi``: run the service with uvicorn."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from netgym.errors import NetgymError
from netgym_envapi.settings import Settings
from netgym_http.settings_help import (
    add_log_level,
    read_settings,
    settings_epilog,
    start_logging,
)


def main(argv: list[str] | None = None) -> None:
    """Parse flags (each overrides its NETGYM_* variable) and serve until stopped."""
    parser = argparse.ArgumentParser(
        prog="netgym-envapi",
        description=__doc__,
        epilog=settings_epilog(Settings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help="bind address (NETGYM_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="REST port (NETGYM_PORT, default 8000)")
    parser.add_argument("--data-port", type=int, help="data port (NETGYM_DATA_PORT, default 8001)")
    parser.add_argument(
        "--allow-unauthenticated-remote-access",
        action="store_true",
        default=None,
        help="listen beyond loopback with no token: anyone who reaches the port may run envs",
    )
    add_log_level(parser)
    args = parser.parse_args(argv)
    overrides = {
        key: value for key, value in vars(args).items() if value is not None and key != "log_level"
    }
    start_logging(args.log_level, Settings, "netgym.envapi")
    settings = read_settings(Settings, "netgym-envapi", overrides)
    try:
        settings.check_bind()
    except NetgymError as exc:
        sys.exit(f"netgym-envapi: {exc.message}")

    import uvicorn

    from netgym_envapi.app import create_app
    from netgym_http.access_log import quiet_polls
    from netgym_http.timely import timely_http

    # uvicorn ends by raising again the signal that stopped it. SIGTERM's own
    # handling would end the process there and then; as SystemExit, the exit
    # handlers run (multiprocessing's removes its folder in /tmp).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    quiet_polls()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        ws="none",
        http=timely_http(settings.request_timeout_s),
    )


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    main()
