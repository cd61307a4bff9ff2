"""netgym-train keeps torch's idle OpenMP threads from spinning on the envs' cores."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from netgym_agent.threads import SPINCOUNT

PROBE = (
    "import os, sys; {before}"
    "from netgym_agent.threads import limit_openmp_spinning; limit_openmp_spinning(); "
    "print(os.environ.get('GOMP_SPINCOUNT'))"
)


def spincount(environ: dict[str, str], before: str = "") -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(before=before)],
        env={**env, **environ},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip(), result.stderr


@pytest.mark.parametrize(
    ("environ", "expected"),
    [({}, SPINCOUNT), ({"GOMP_SPINCOUNT": "7"}, "7"), ({"OMP_WAIT_POLICY": "PASSIVE"}, "None")],
    ids=["default", "user-spincount", "user-wait-policy"],
)
def test_spincount_is_set_unless_the_user_chose(environ: dict[str, str], expected: str) -> None:
    assert spincount(environ)[0] == expected


def test_too_late_after_torch_is_loaded_says_so() -> None:
    value, stderr = spincount({}, before="import torch; ")
    assert value == "None"
    assert "GOMP_SPINCOUNT" in stderr


def test_the_command_line_sets_it_before_loading_torch() -> None:
    probe = (
        "import sys, os; from netgym_agent.__main__ import main; "
        "main(['evaluate', '/nonexistent-run']); "
        "print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split()[0] == SPINCOUNT
