"""What a part of netgym installed without its extra says, instead of a bare ImportError."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import sys
import urllib.parse
from pathlib import Path


def require_extra(extra: str, modules: tuple[str, ...], command: str | None = None) -> None:
    """Raise, naming the pip command, when a module of ``netgym[extra]`` is missing.

    Run as ``command`` (the console script of ``extra``, which every install of
    netgym has), print that and exit with 1 instead: a traceback says no more.

    Raises:
        ModuleNotFoundError: listing the missing modules.
    """
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    if missing:
        message = (
            f"netgym's {extra} needs {', '.join(missing)}, which are not installed: "
            f"pip install {install_target(extra)}"
        )
        if command is not None and Path(sys.argv[0]).name == command:
            sys.exit(f"{command}: {message}")
        raise ModuleNotFoundError(message, name=missing[0])


def install_target(extra: str) -> str:
    """What to give pip for netgym with ``extra``: the folder it was installed from
    (netgym is not on PyPI, where another project could take the name)."""
    source = "/path/to/netgym"
    try:
        record = importlib.metadata.distribution("netgym").read_text("direct_url.json")
        url = str(json.loads(record or "{}").get("url", ""))
    except (importlib.metadata.PackageNotFoundError, ValueError):
        url = ""
    if url.startswith("file://"):
        source = urllib.parse.unquote(urllib.parse.urlparse(url).path)
    return f'"{source}[{extra}]"'
