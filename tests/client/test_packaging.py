"""The client library imports without the services' dependencies."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

from netgym.extras import require_extra

CHECK = """
import sys
import netgym, netgym.protocol, netgym.client.vector
heavy = sorted(m for m in ("fastapi", "uvicorn", "pydantic", "ale_py", "netgym_envapi",
                           "stable_baselines3", "torch") if m in sys.modules)
assert not heavy, heavy
print("ok")
"""


def test_client_imports_nothing_from_the_server() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_services_never_import_each_other_or_the_agent() -> None:
    services = pathlib.Path(__file__).resolve().parents[2] / "services"
    for path in services.rglob("*.py"):
        text = path.read_text()
        assert "stable_baselines3" not in text, path


def test_a_service_installed_without_its_extra_names_the_pip_command() -> None:
    # With the folder netgym was installed from: netgym is not on PyPI.
    source = pathlib.Path(__file__).resolve().parents[2]
    with pytest.raises(
        ModuleNotFoundError, match=re.escape(f'pip install "{source}[envapi]"')
    ) as caught:
        require_extra("envapi", ("numpy", "no_such_module_for_netgym"))
    assert "needs no_such_module_for_netgym," in str(caught.value)
    require_extra("envapi", ("numpy",))  # all there: nothing to say


def test_a_command_installed_without_its_extra_says_so_in_one_line(tmp_path: pathlib.Path) -> None:
    command = tmp_path / "netgym-envapi"  # as pip writes a console script
    command.write_text(
        "from netgym.extras import require_extra\n"
        "require_extra('envapi', ('no_such_module_for_netgym',), 'netgym-envapi')\n"
    )
    result = subprocess.run(
        [sys.executable, str(command)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.startswith("netgym-envapi: netgym's envapi needs no_such_module_for")
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
