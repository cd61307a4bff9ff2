"""The device: CUDA when visible, the CPU otherwise, and never the CPU when a GPU is required.

This machine has no GPU, so the "required but not visible" path is the real
one here; the unit tests also pretend CUDA is absent, so that they mean the
same on a GPU machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from netgym_agent.config import TrainConfig, config_from_dict
from netgym_agent.device import REQUIRE_GPU_VARIABLE, describe, resolve_device
from netgym_agent.errors import ConfigError, DeviceError
from tests.agent.helpers import CONFIGS, SMALL_CARTPOLE, run_train

GPU_HELP = ["nvidia-smi", "NVIDIA Container Toolkit", "deploy:", "reservations:", "driver: nvidia"]


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv(REQUIRE_GPU_VARIABLE, raising=False)


def config(**changes: object) -> TrainConfig:
    return config_from_dict({**SMALL_CARTPOLE, "device": "auto", **changes})


@pytest.mark.usefixtures("no_cuda")
def test_auto_falls_back_to_the_cpu_when_no_gpu_is_required() -> None:
    device = resolve_device(config())
    assert device.type == "cpu"
    assert "PyTorch sees no CUDA device" in describe(device)


@pytest.mark.usefixtures("no_cuda")
def test_config_requiring_a_gpu_stops_with_what_to_check() -> None:
    with pytest.raises(DeviceError) as info:
        resolve_device(config(require_gpu=True))
    message = str(info.value)
    assert "require_gpu: true" in message
    assert message.endswith("on purpose, set require_gpu: false in the config."), message
    for words in GPU_HELP:
        assert words in message, message


@pytest.mark.usefixtures("no_cuda")
@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_environment_requiring_a_gpu_stops(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(REQUIRE_GPU_VARIABLE, value)
    with pytest.raises(DeviceError, match=f"{REQUIRE_GPU_VARIABLE}={value}") as info:
        resolve_device(config())
    assert f"on purpose, unset {REQUIRE_GPU_VARIABLE} (in Compose" in str(info.value)


@pytest.mark.usefixtures("no_cuda")
def test_environment_can_say_no(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_GPU_VARIABLE, "0")
    assert resolve_device(config()).type == "cpu"
    monkeypatch.setenv(REQUIRE_GPU_VARIABLE, "maybe")
    with pytest.raises(ConfigError, match="'maybe'"):
        resolve_device(config())


@pytest.mark.usefixtures("no_cuda")
def test_explicit_cuda_without_a_gpu_stops() -> None:
    with pytest.raises(DeviceError, match="device: cuda") as info:
        resolve_device(config(device="cuda"))
    assert "on purpose, use device: auto (the GPU when there is one) or device: cpu" in str(
        info.value
    )


@pytest.mark.usefixtures("no_cuda")
def test_evaluating_on_cuda_named_on_the_command_line_says_so() -> None:
    """Not the config's device, and no training: it blamed the config's device: auto."""
    with pytest.raises(DeviceError) as info:
        resolve_device(config(device="cuda"), chosen=True)
    message = str(info.value)
    assert message.startswith("a GPU is required (--device cuda) but PyTorch sees no CUDA device")
    assert "stopping before evaluating" in message
    assert message.endswith("To evaluate on the CPU, give --device cpu, or leave --device out.")


@pytest.mark.usefixtures("no_cuda")
def test_cpu_and_gpu_required_contradict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_GPU_VARIABLE, "1")
    with pytest.raises(ConfigError, match=f"contradicts .*unset {REQUIRE_GPU_VARIABLE}"):
        resolve_device(config(device="cpu"))
    monkeypatch.delenv(REQUIRE_GPU_VARIABLE)
    with pytest.raises(ConfigError, match=r"contradicts .*set require_gpu: false"):
        resolve_device(config(device="cpu", require_gpu=True))


@pytest.mark.parametrize("how", ["config", "environment"])
def test_command_refuses_to_train_on_the_cpu(tmp_path: Path, how: str) -> None:
    """No server is given: the command must stop before it looks for one."""
    run_dir = tmp_path / "run"
    args = [str(CONFIGS / "cartpole_ppo.yaml"), "--run-dir", str(run_dir)]
    args += ["--url", "http://127.0.0.1:9"]
    env = {}
    if how == "config":
        args += ["--set", "require_gpu=true"]
    else:
        env[REQUIRE_GPU_VARIABLE] = "1"
    result = run_train(None, *args, timeout=120, **env)
    assert result.returncode == 1, result.stdout
    assert "a GPU is required" in result.stdout
    for words in GPU_HELP:
        assert words in result.stdout, result.stdout
    assert "Traceback" not in result.stdout
    assert "training on" not in result.stdout
    assert not run_dir.exists()
