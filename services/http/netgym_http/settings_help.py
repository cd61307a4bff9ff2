"""A service's settings as a user meets them: its ``--help`` epilog, every setting read
from its pydantic settings class, and the variables set that look like a misspelled one."""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

SettingsType = TypeVar("SettingsType", bound=BaseSettings)
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# The services' variable prefixes: a variable of the emulator service's
# (NETGYM_EMULATOR_...) is the envapi's only if it is close to one of its own
# settings under that prefix (NETGYM_EMULATOR_URL).
SERVICE_PREFIXES = ("NETGYM_", "NETGYM_EMULATOR_")


def settings_epilog(settings: type[BaseSettings]) -> str:
    """One line per setting: its environment variable, default and what it does."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    lines = ["settings (environment variables; a flag above overrides its variable):"]
    for name, field in settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, os.PathLike):
            default = os.fspath(default)
        shown = "none" if default is None else repr(default)
        lines.append(f"  {prefix}{name.upper()} (default {shown})")
        if field.description:
            lines.append(f"      {field.description}")
    return "\n".join(lines)


def misspelled_settings(
    settings: type[BaseSettings], environ: Mapping[str, str] = os.environ
) -> list[str]:
    """What to say of each variable set that is no setting but close to one
    (``NETGYM_STEP_TIMOUT_S``): pydantic ignores it, and the default would apply unseen.

    Variables far from every setting are left alone: other programs of netgym read
    ``NETGYM_*`` variables of their own.
    """
    prefix = str(settings.model_config.get("env_prefix", ""))
    known = [name.upper() for name in settings.model_fields]
    others = [p for p in SERVICE_PREFIXES if len(p) > len(prefix) and p.startswith(prefix)]
    said = []
    for variable in sorted(environ):
        name = variable.removeprefix(prefix)
        if name == variable or name in known:
            continue
        candidates = known
        for other in others:
            if variable.startswith(other):
                candidates = [k for k in known if k.startswith(other.removeprefix(prefix))]
        if close := difflib.get_close_matches(name, candidates, n=1, cutoff=0.85):
            said.append(
                f"{variable} is set but is no setting, so it changes nothing: did you mean "
                f"{prefix}{close[0]}? (--help lists the settings)"
            )
    return said


def add_log_level(parser: argparse.ArgumentParser) -> None:
    """The ``--log-level`` flag both services take."""
    parser.add_argument(
        "--log-level", default="info", choices=LOG_LEVELS, help="what the log shows (info)"
    )


def start_logging(level: str, settings: type[BaseSettings], logger: str) -> None:
    """Log with each line's level, from ``level`` up; warn of misspelled settings."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    for warning in misspelled_settings(settings):
        logging.getLogger(logger).warning(warning)


def read_settings(
    settings: type[SettingsType], prog: str, overrides: dict[str, Any]
) -> SettingsType:
    """The settings from the environment and ``overrides`` (the flags given); a value
    that does not fit ends the program, with a line naming its variable or flag."""
    try:
        return settings(**overrides)
    except ValidationError as exc:
        prefix = str(settings.model_config.get("env_prefix", ""))
        lines = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            flag = f"--{name.replace('_', '-')}"
            given = flag if name in overrides else f"{prefix}{name.upper()}"
            lines.append(f"{prog}: {given}={error['input']!r}: {error['msg']}")
        sys.exit("\n".join(lines))
