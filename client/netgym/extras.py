"""What a part of netgym installed without its extra says, instead of a bare ImportError."""

from __future__ import annotations

import importlib.util


def require_extra(extra: str, modules: tuple[str, ...]) -> None:
    """Raise, naming the pip command, when a module of ``netgym[extra]`` is missing.

    Raises:
        ModuleNotFoundError: listing the missing modules.
    """
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    if missing:
        raise ModuleNotFoundError(
            f"netgym's {extra} needs {', '.join(missing)}, which are not installed: "
            f"pip install 'netgym[{extra}]'",
            name=missing[0],
        )
