"""Pick the torch device, refuse to fall back to the CPU when a GPU is required, say which.

A GPU workstation that silently trains on its CPU wastes a day before anyone
notices; so when the config (``require_gpu: true``) or the environment
(``NETGYM_REQUIRE_GPU=1``, set by the GPU Compose service) asks for a GPU and
PyTorch sees none, the run stops at start-up with what to check.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from typing import TextIO

import torch

from netgym_agent.config import TrainConfig
from netgym_agent.errors import ConfigError, DeviceError

REQUIRE_GPU_VARIABLE = "NETGYM_REQUIRE_GPU"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}

_COMPOSE_BLOCK = """\
        deploy:
          resources:
            reservations:
              devices:
                - driver: nvidia
                  count: all
                  capabilities: [gpu]"""


def gpu_required(config: TrainConfig) -> tuple[bool, str]:
    """Whether a GPU is required, and who requires it (for the messages).

    Raises:
        ConfigError: when ``NETGYM_REQUIRE_GPU`` holds something other than a yes or no.
    """
    raw = os.environ.get(REQUIRE_GPU_VARIABLE)
    if raw is not None:
        value = raw.strip().lower()
        if value in _TRUE:
            return True, f"{REQUIRE_GPU_VARIABLE}={raw}"
        if value not in _FALSE:
            raise ConfigError(
                f"{REQUIRE_GPU_VARIABLE}={raw!r}: "
                "use 1/true/yes to require a GPU, 0/false/no not to"
            )
    if config.require_gpu:
        return True, "the config's require_gpu: true"
    return False, ""


def resolve_device(config: TrainConfig, chosen: bool = False) -> torch.device:
    """The device to train on: CUDA when visible (``device: auto``), else the CPU.

    ``chosen``: the config's device was named on the command line for this run
    alone (``evaluate --device cpu``), which a GPU requirement does not overrule.

    Raises:
        DeviceError: a GPU is required, or ``device: cuda`` asked for, and none is visible.
        ConfigError: ``device: cpu`` together with a GPU requirement.
    """
    required, by = (False, "") if chosen else gpu_required(config)
    if config.device == "cpu":
        if required:
            raise ConfigError(
                f"device: cpu contradicts {by}: drop one of them "
                f"({_cpu_on_purpose(by)} to train on the CPU on purpose)"
            )
        return torch.device("cpu")
    if not torch.cuda.is_available():
        if required or config.device != "auto":
            if chosen:  # evaluate --device cuda: not the config's, and no training
                raise DeviceError(_no_gpu_message(f"--device {config.device}", "evaluating"))
            raise DeviceError(_no_gpu_message(by or f"the config's device: {config.device}"))
        return torch.device("cpu")
    device = torch.device("cuda" if config.device == "auto" else config.device)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(
            f"device: {config.device}, but PyTorch sees {torch.cuda.device_count()} CUDA "
            f"device(s) (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
        )
    return device


def describe(device: torch.device) -> str:
    """The device in words: ``CUDA cuda:0 (NVIDIA H100, 80 GiB)`` or ``the CPU (...)``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return f"CUDA cuda:{index} ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    why = "PyTorch sees no CUDA device" if not torch.cuda.is_available() else "device: cpu"
    threads = torch.get_num_threads()
    return f"the CPU, {threads} torch thread{'s' if threads > 1 else ''} ({why})"


def announce(device: torch.device, out: TextIO = sys.stdout, doing: str = "training") -> None:
    """Print the device in a banner nobody can miss at the top of the log."""
    line = f" netgym-train: {doing} on {describe(device)} "
    rule = "=" * max(len(line), 60)
    print(f"{rule}\n{line}\n{rule}", file=out, flush=True)


def _no_gpu_message(by: str, doing: str = "training") -> str:
    build = torch.version.cuda
    if build is None:
        torch_line = (
            f"PyTorch {torch.__version__} is a CPU-only build: install a CUDA build of torch "
            "(https://pytorch.org/get-started/locally/)"
        )
    else:
        torch_line = f"PyTorch {torch.__version__} is built for CUDA {build} but finds no device"
    smi = shutil.which("nvidia-smi")
    nodes = sorted(glob.glob("/dev/nvidia[0-9]*"))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return "\n".join(
        [
            f"a GPU is required ({by}) but PyTorch sees no CUDA device; "
            f"stopping before {doing} rather than run on the CPU.",
            f"  {torch_line}.",
            f"  nvidia-smi: {smi or 'not on PATH'}; "
            f"GPU device files: {', '.join(nodes) or 'none'}; "
            f"CUDA_VISIBLE_DEVICES: {'unset' if visible is None else repr(visible)}.",
            "Check:",
            "  - the NVIDIA driver: `nvidia-smi` works on the host and lists the GPU;",
            "  - in Docker: the NVIDIA Container Toolkit is installed and Docker uses it "
            "(`sudo nvidia-ctk runtime configure --runtime=docker`, then restart Docker), "
            "and `docker run --rm --gpus all ubuntu nvidia-smi` works;",
            "  - the Compose service reserves the GPU:",
            _COMPOSE_BLOCK,
            "  - CUDA_VISIBLE_DEVICES does not hide the GPU.",
            "To evaluate on the CPU, give --device cpu, or leave --device out."
            if doing == "evaluating"
            else f"To train on the CPU on purpose, {_cpu_on_purpose(by)}.",
        ]
    )


def _cpu_on_purpose(by: str) -> str:
    """What undoes the requirement ``by`` names."""
    if by.startswith(REQUIRE_GPU_VARIABLE):
        return f"unset {REQUIRE_GPU_VARIABLE} (in Compose: run the agent-cpu service)"
    if "require_gpu" in by:
        return "set require_gpu: false in the config"
    return "use device: auto (the GPU when there is one) or device: cpu (--device cpu to evaluate)"
