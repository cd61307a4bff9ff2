"""Print what one of netgym's extras needs, one requirement a line, from pyproject.toml.

The Dockerfiles install these in a layer of their own, before the source is
copied, so an edit to the code does not reinstall every dependency.

    python docker/requirements.py pyproject.toml agent > requirements.txt
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from typing import Any

SELF = re.compile(r"^netgym\[(?P<extras>[^\]]+)\]$")


def requirements(project: dict[str, Any], extras: list[str]) -> list[str]:
    """The base dependencies plus those of ``extras``, with ``netgym[...]`` expanded."""
    optional: dict[str, list[str]] = project["optional-dependencies"]
    wanted: list[str] = list(project["dependencies"])
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        if extra not in optional:
            sys.exit(f"pyproject.toml has no extra {extra!r}; it has {', '.join(optional)}")
        seen.add(extra)
        for requirement in optional[extra]:
            match = SELF.match(requirement.replace(" ", ""))
            if match:
                pending.extend(match["extras"].split(","))
            elif requirement not in wanted:
                wanted.append(requirement)
    return wanted


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    project = tomllib.loads(Path(sys.argv[1]).read_text())["project"]
    print("\n".join(requirements(project, sys.argv[2:])))


if __name__ == "__main__":
    main()
