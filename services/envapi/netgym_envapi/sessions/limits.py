"""What a session accepts and keeps at most: the size of its spaces' description,
of one step's results, and of an error's text."""

from __future__ import annotations

import json
from typing import Any

from netgym.errors import InvalidRequestError
from netgym.protocol import ResultLayout

# The spaces' description (JSON) at most: a Box with bounds per element sends them all,
# and the main process reads it in its event loop. A stack of four Atari screens
# with bounds per pixel takes about 2 MiB.
MAX_SPACES_BYTES = 16 << 20
# One step's results of all the envs of a session, at most: the session, and the
# client, hold them in memory (64 envs of four stacked Atari screens take 26 MB).
MAX_STEP_BYTES = 256 << 20
# What is logged of an error's message, or kept of it in an ended session's record:
# an env's error may quote the whole request back.
KEPT_TEXT_CHARS = 4000


def shortened(text: str) -> str:
    """``text``, or its first ``KEPT_TEXT_CHARS`` characters and how many more there were."""
    if len(text) <= KEPT_TEXT_CHARS:
        return text
    return f"{text[:KEPT_TEXT_CHARS]}... ({len(text) - KEPT_TEXT_CHARS:,} more characters)"


def check_step_size(results: ResultLayout) -> None:
    """Refuse envs whose step results (every env's observation) are too large to hold.

    Raises:
        InvalidRequestError: saying how large they are.
    """
    if results.step_nbytes > MAX_STEP_BYTES:
        raise InvalidRequestError(
            f"a step of {results.num_envs} envs would return {results.step_nbytes >> 20:,} MiB "
            f"of observations, over the {MAX_STEP_BYTES >> 20} MiB the envapi serves: ask for "
            "fewer envs, or smaller observations",
            details={"num_envs": results.num_envs, "step_bytes": results.step_nbytes},
        )


def check_described_size(spaces: dict[str, Any]) -> None:
    """Refuse spaces whose description the envapi would not pass on.

    Raises:
        InvalidRequestError: saying how big they are, and what makes them so.
    """
    size = len(json.dumps(spaces))
    if size > MAX_SPACES_BYTES:
        raise InvalidRequestError(
            f"the env's spaces take {size / 2**20:.0f} MiB to describe, over the "
            f"{MAX_SPACES_BYTES >> 20} MiB the envapi serves (a Box whose bounds differ "
            "from element to element sends every one): make the observations smaller, "
            "such as with a smaller frame_stack stack_size"
        )
