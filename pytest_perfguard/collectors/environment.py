"""The environment fingerprint a measurement is keyed by."""

from __future__ import annotations

import platform
from typing import Any

import torch

from ..record import FINGERPRINT_VERSION, Environment
from ._torch_private import cpu_capability, inductor_settings


def triton_version() -> str:
    try:
        import triton

        return str(triton.__version__)
    except Exception:
        return "none"


def device_name(device: torch.device) -> str:
    """The device as keyed: the GPU's name, else the device type. The CPU's ISA level is
    recorded apart (``Environment.cpu_isa``) and not keyed."""
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    return device.type


def fingerprint(
    device: torch.device,
    *,
    backend: str,
    mode: str | None,
    dynamic: bool | None,
    fullgraph: bool,
    mode_config: dict[str, Any] | None = None,
    compile_options: dict[str, Any] | None = None,
) -> Environment:
    """What this measurement depends on. ``mode_config`` is the compiler wrapper's config
    (the mode's patches and the compile options applied); the options are also kept on
    their own, as the test gave them."""
    python = ".".join(platform.python_version_tuple()[:2])
    return Environment(
        python=python,
        torch=str(torch.__version__),
        triton=triton_version() if device.type == "cuda" else "n/a (cpu)",
        device=device.type,
        device_name=device_name(device),
        backend=backend,
        mode=mode or "default",
        dynamic=repr(dynamic),
        fullgraph=fullgraph,
        inductor=inductor_settings(mode_config) if backend == "inductor" else {},
        compile_options={str(k): repr(v) for k, v in sorted((compile_options or {}).items())},
        cpu_isa=cpu_capability() if device.type == "cpu" else "",
        fingerprint=FINGERPRINT_VERSION,
    )
