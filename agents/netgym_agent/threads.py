"""Keep torch's idle OpenMP threads from spinning on the cores the envs need.

torch's OpenMP (libgomp on Linux) lets a thread that has finished its part of
an operation spin for ``GOMP_SPINCOUNT`` iterations, 300,000 by default
(milliseconds), before it sleeps. PPO's rollouts alternate a short policy
forward pass with an env step; with the default, torch's threads spin through
every env step and take the cores from the processes stepping the envs (the
envapi's session and workers on the same machine, SubprocVecEnv's workers),
and the policy's own operations gain little from it. A tenth of the default
made training faster on 2 cores with in-process envs and with remote ones
(docs/benchmarks.md, "Training on remote envs").

libgomp reads the variable once, when torch loads it: this has to run first.
"""

from __future__ import annotations

import logging
import os
import sys

SPINCOUNT = "30000"
log = logging.getLogger("netgym.agent")


def limit_openmp_spinning() -> None:
    """Set ``GOMP_SPINCOUNT`` (unless it is set) for the torch this process loads."""
    if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        return  # the user's choice
    if "torch" in sys.modules:
        log.warning(
            "torch was imported before netgym_agent: its OpenMP threads spin with "
            "libgomp's default; set GOMP_SPINCOUNT=%s in the environment to avoid it",
            SPINCOUNT,
        )
        return
    os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
