"""The environment fingerprint a measurement is keyed by."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
from collections.abc import Iterable
from typing import Any

import torch

from ..record import FINGERPRINT_VERSION, Environment
from .private.inductor import cpu_capability, inductor_settings


def triton_version() -> str:
    try:
        import triton

        return str(triton.__version__)
    except Exception:
        return "none"


#: Libraries whose version shapes the graphs perfguard measures, recorded when installed
#: (read from their metadata: nothing is imported). A project adds its own through the
#: ``pytest_perfguard_libraries`` hook.
GRAPH_LIBRARIES = ("transformers",)


@functools.lru_cache(maxsize=64)
def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def library_versions(names: Iterable[str]) -> dict[str, str]:
    """The installed version of each named distribution; those not installed are left out."""
    return {name: version for name in names
            if (version := _installed_version(name)) is not None}


def card(device: torch.device) -> str:
    """Which GPU ran the measurement: ``cuda:0 NVIDIA H100 80GB HBM3 GPU-<uuid>``, with the
    ``CUDA_VISIBLE_DEVICES`` entry when it is set (an xdist worker's own card); "" off CUDA."""
    if device.type != "cuda":
        return ""
    index = device.index if device.index is not None else torch.cuda.current_device()
    properties = torch.cuda.get_device_properties(index)
    text = f"cuda:{index} {properties.name}"
    uuid = getattr(properties, "uuid", None)  # torch >= 2.2
    if uuid is not None:
        text += f" GPU-{uuid}" if not str(uuid).startswith(("GPU-", "MIG-")) else f" {uuid}"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        text += f" (CUDA_VISIBLE_DEVICES={visible})"
    return text


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
        libraries=library_versions(GRAPH_LIBRARIES),
        card=card(device),
    )
