"""``netgym-emulator``: run the emulator service with uvicorn."""

from __future__ import annotations

import argparse
import sys

from netgym.errors import NetgymError
from netgym_emulator.settings import EmulatorSettings
from netgym_http.settings_help import (
    add_log_level,
    read_settings,
    settings_epilog,
    start_logging,
)


def main(argv: list[str] | None = None) -> None:
    """Parse flags (each overrides its NETGYM_EMULATOR_* variable) and serve until stopped."""
    parser = argparse.ArgumentParser(
        prog="netgym-emulator",
        description=__doc__,
        epilog=settings_epilog(EmulatorSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help="REST bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="REST port (default 8002)")
    parser.add_argument("--games-dir", help="the folder of game folders (default ./games)")
    add_log_level(parser)
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None and k != "log_level"}
    start_logging(args.log_level, EmulatorSettings, "netgym.emulator")
    settings = read_settings(EmulatorSettings, "netgym-emulator", overrides)

    import uvicorn

    from netgym_emulator.app import create_app
    from netgym_http.access_log import quiet_polls
    from netgym_http.timely import timely_http

    try:
        app = create_app(settings)
    except NetgymError as exc:
        sys.exit(f"netgym-emulator: {exc.message}")
    quiet_polls()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        ws="none",
        http=timely_http(settings.request_timeout_s),
    )


if __name__ == "__main__":
    main()
