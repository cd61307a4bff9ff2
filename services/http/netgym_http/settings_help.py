"""A service's ``--help`` epilog: every setting, read from its pydantic settings class."""

from __future__ import annotations

import os

from pydantic_settings import BaseSettings


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
