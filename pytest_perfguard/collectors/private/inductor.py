"""Inductor's configuration, its caches and the code it generates.

Private APIs: ``torch._inductor.config`` (codegen settings, ``cpp.enable_kernel_profile``,
``post_grad_custom_post_pass``, ``fx_graph_cache``, ``fallback_random``),
``torch._functorch.config.enable_autograd_cache``,
``torch._inductor.custom_graph_pass.CustomGraphPass`` / ``get_custom_graph_passes``,
``torch._inductor.runtime.cache_dir_utils.default_cache_dir``,
``torch._inductor.metrics.CachedMetricsHelper`` (whether a cache hit replays the byte count),
``torch._inductor.codecache.PyCodeCache.modules`` and
``torch._inductor.graph.GraphLowering.save_output_code``. Checked on torch 2.11-2.13.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

#: Inductor settings that change the generated code, recorded in the environment
#: fingerprint (``torch._inductor.config``; names checked on torch 2.11-2.13).
CODEGEN_SETTINGS = (
    "max_autotune",
    "max_autotune_pointwise",
    "max_autotune_gemm",
    "coordinate_descent_tuning",
    "freezing",
    "cpp_wrapper",
    "epilogue_fusion",
    "pattern_matcher",
    "aggressive_fusion",
    "split_reductions",
    "fallback_random",
    "combo_kernels",
    "triton.cudagraphs",
    "cpp.simdlen",
    "cpp.max_horizontal_fusion_size",
)


def inductor_settings(overrides: dict[str, Any] | None = None) -> dict[str, str]:
    """The codegen-relevant inductor settings as text (overrides: a compile mode's patches)."""
    try:
        import torch._inductor.config as inductor_config
    except ImportError:  # pragma: no cover - inductor ships with every supported torch
        return {}
    settings: dict[str, str] = {}
    for name in CODEGEN_SETTINGS:
        obj: Any = inductor_config
        try:
            for part in name.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        settings[name] = repr(obj)
    for name, value in (overrides or {}).items():
        settings[name] = repr(value)
    return settings


#: Where perfguard's compiles keep inductor's caches unless the user chose a folder with
#: TORCHINDUCTOR_CACHE_DIR: ``$PERFGUARD_CACHE_DIR``, else ``$XDG_CACHE_HOME/perfguard/inductor``
#: (``~/.cache/perfguard/inductor``). Its own folder, not inductor's shared default
#: ``/tmp/torchinductor_<user>``: a long-lived shared default folder, written by many
#: processes and torch builds, gave heap-corruption aborts in torch 2.13's CPU build here.
CACHE_DIR_ENV = "PERFGUARD_CACHE_DIR"


def perfguard_cache_dir() -> Path:
    """perfguard's own inductor cache folder (see :data:`CACHE_DIR_ENV`); a CI cache restores it."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return (Path(base) / "perfguard" / "inductor").resolve()


def measurement_cache_dir() -> Path | None:
    """The folder perfguard's compiles use, or None where the user's TORCHINDUCTOR_CACHE_DIR rules.

    Inductor writes its default folder into TORCHINDUCTOR_CACHE_DIR the first time it
    compiles (``torch._inductor.runtime.cache_dir_utils.cache_dir``, torch 2.11-2.13), so a
    value equal to that default is inductor's own choice, not the user's.
    """
    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if chosen:
        try:
            from torch._inductor.runtime.cache_dir_utils import default_cache_dir

            is_default = os.path.abspath(chosen) == os.path.abspath(default_cache_dir())
        except ImportError:  # pragma: no cover - a torch without it: respect the variable
            is_default = False
        if not is_default:
            return None
    # One folder per CPU ISA level (ATEN_CPU_CAPABILITY): torch 2.13's FX-graph cache does not
    # key on it, and a graph cached at AVX512 and loaded at AVX2 computed NaNs here
    # (tests/test_real_models.py switches the level between runs).
    return perfguard_cache_dir() / f"isa-{cpu_capability().lower()}"


def cache_replays_bytes() -> bool:
    """Whether an inductor cache hit replays the byte count we capture (see
    :func:`.inductor_bytes.capture_inductor_bytes`):
    ``torch._inductor.metrics.CachedMetricsHelper.apply_deltas`` with ``num_bytes_accessed``
    among the replayed ``CachedMetricsDeltas`` (torch 2.11-2.13).
    """
    try:
        from torch._inductor import metrics
    except ImportError:  # pragma: no cover
        return False
    helper = getattr(metrics, "CachedMetricsHelper", None)
    fields = getattr(metrics, "get_metric_fields", None)
    if helper is None or not hasattr(helper, "apply_deltas") or fields is None:
        return False
    try:
        return "num_bytes_accessed" in fields()
    except Exception:  # pragma: no cover
        return False


@contextlib.contextmanager
def measurement_compile_config(
    compile_options: dict[str, Any] | None = None,
) -> Iterator[list[str]]:
    """Config for compiles whose kernels and bytes perfguard measures.

    - Generated C++ kernels: with the Python wrapper (the default) they are the
      ``cpp_fused_*`` callables of the compiled module, and :func:`annotated_kernels` names
      them in the profiled call; the generated code is then exactly a plain compile's.
      Where that cannot work (``cpp_wrapper``, in the measurement's ``compile_options`` or
      set in inductor's config: kernels are called from C++; a torch
      without ``PyCodeCache.modules``) ``cpp.enable_kernel_profile`` is turned on instead,
      which puts a profiler handle into every kernel (``graph_0_cpp_fused_...`` events; it
      cost ~12% more g++ time per kernel, and identical kernels of different graphs no
      longer shared one build).
    - The byte count must survive a cache hit, so perfguard's entries must never be a plain
      compile's (which ran without the count): a no-op post-grad pass whose ``uuid`` is
      part of inductor's cache key keeps them apart (:class:`_CacheKeySalt`); where that
      is not possible, ``cpp.enable_kernel_profile`` (also part of the key) does it.
    - The FX-graph and AOT-autograd caches stay as the user has them (on by default) when
      a hit replays the byte count (:func:`cache_replays_bytes`); in a torch where it does
      not, they are turned off, since a hit would lose the bytes.
    - TORCHINDUCTOR_CACHE_DIR points at :func:`measurement_cache_dir` while perfguard
      compiles, unless the user set it. Inductor reads it on every cache access, and a
      damaged FX-graph or AOT-autograd entry (truncated, garbage) is a warning and a miss
      in torch 2.13, never a crash.

    Yields the names of settings this torch version lacked (for the record).
    """
    import torch._inductor.config as inductor_config

    patches: dict[str, Any] = {}
    missing: list[str] = []
    salted = _salted_post_grad_pass(inductor_config)
    if salted is not None:
        patches["post_grad_custom_post_pass"] = salted
    cpp_wrapper = bool((compile_options or {}).get("cpp_wrapper")) \
        or bool(getattr(inductor_config, "cpp_wrapper", False))
    if cpp_wrapper or salted is None or _code_modules() is None:
        if hasattr(inductor_config, "cpp") and hasattr(inductor_config.cpp, "enable_kernel_profile"):
            patches["cpp.enable_kernel_profile"] = True
        else:
            missing.append("cpp.enable_kernel_profile")
    replay = cache_replays_bytes()
    if not replay and hasattr(inductor_config, "fx_graph_cache"):
        patches["fx_graph_cache"] = False
    folder = measurement_cache_dir()
    with contextlib.ExitStack() as stack:
        stack.enter_context(inductor_config.patch(patches))
        if not replay:
            try:
                import torch._functorch.config as functorch_config

                if hasattr(functorch_config, "enable_autograd_cache"):
                    stack.enter_context(functorch_config.patch(enable_autograd_cache=False))
            except ImportError:  # pragma: no cover
                pass
        if folder is not None:
            stack.enter_context(_environment_variable("TORCHINDUCTOR_CACHE_DIR", str(folder)))
        yield missing


#: Part of inductor's cache key for perfguard's compiles; bump it when what a cache entry
#: must carry for perfguard changes.
CACHE_KEY_SALT = "pytest-perfguard: inductor byte count and kernel list recorded (2)"


def _salted_post_grad_pass(inductor_config: Any) -> Any:
    """The post-grad custom pass setting with :class:`_CacheKeySalt` added, or None where
    this torch cannot take it (no ``CustomGraphPass``, or the user's own pass set on a
    torch that accepts only one; torch 2.13 takes a list via
    ``get_custom_graph_passes``)."""
    try:
        from torch._inductor import custom_graph_pass
    except ImportError:  # pragma: no cover
        return None
    base = getattr(custom_graph_pass, "CustomGraphPass", None)
    if base is None or not hasattr(inductor_config, "post_grad_custom_post_pass"):
        return None
    salt = _cache_key_salt(base)
    current = inductor_config.post_grad_custom_post_pass
    if current is None:
        return salt
    if not hasattr(custom_graph_pass, "get_custom_graph_passes"):
        return None
    return [*custom_graph_pass.get_custom_graph_passes(current), salt]


@functools.cache
def _cache_key_salt(base: type) -> Any:
    """The one instance of a no-op ``CustomGraphPass`` (``base``) whose uuid is
    :data:`CACHE_KEY_SALT`."""

    class _CacheKeySalt(base):  # type: ignore[misc, valid-type, unused-ignore]
        """Does nothing to the graph; its uuid sets perfguard's cache entries apart."""

        def __call__(self, graph: Any) -> None:
            return None

        def uuid(self) -> str:
            return CACHE_KEY_SALT

    return _CacheKeySalt()


def _code_modules() -> list[Any] | None:
    """Every Python wrapper module inductor loaded in this process
    (``torch._inductor.codecache.PyCodeCache.modules``, checked on torch 2.13), or None."""
    try:
        from torch._inductor.codecache import PyCodeCache
    except ImportError:  # pragma: no cover
        return None
    modules = getattr(PyCodeCache, "modules", None)
    return modules if isinstance(modules, list) else None


#: The Python wrapper's names for inductor's generated C++ kernels (``cpp_fused_add_0``).
_CPP_KERNEL_PREFIX = "cpp_"


@contextlib.contextmanager
def annotated_kernels() -> Iterator[None]:
    """Name every generated C++ kernel call in the profiler for the duration.

    The Python wrapper calls each C++ kernel through a module global (``cpp_fused_x_0(...)``);
    for the duration those globals are wrapped in ``torch.profiler.record_function`` with
    the kernel's name, so the call shows up as a ``cpp_fused_x_0`` event inside ``## Call
    CompiledFxGraph ##``, as ``cpp.enable_kernel_profile`` would show it (less its
    ``graph_N_`` prefix, which perfguard drops anyway). Every loaded module is wrapped, and
    put back as found afterwards: a user's own compile of the same code shares the module.
    """
    modules = _code_modules()
    wrapped: list[tuple[Any, str, Any]] = []
    try:
        for module in list(modules or ()):
            for name, fn in list(vars(module).items()):
                if name.startswith(_CPP_KERNEL_PREFIX) and callable(fn) \
                        and not getattr(fn, "_perfguard_kernel", False):
                    wrapped.append((module, name, fn))
                    setattr(module, name, _named_kernel(name, fn))
        yield
    finally:
        for module, name, fn in wrapped:
            setattr(module, name, fn)


def _named_kernel(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    record_function = torch.profiler.record_function

    def kernel(*args: Any) -> Any:
        with record_function(name):
            return fn(*args)

    kernel._perfguard_kernel = True  # type: ignore[attr-defined]
    return kernel


@contextlib.contextmanager
def _environment_variable(name: str, value: str) -> Iterator[None]:
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous



@contextlib.contextmanager
def capture_output_code(codes: list[str]) -> Iterator[None]:
    """Collect the Python/C++ wrapper code inductor generates for each graph.

    ``GraphLowering.save_output_code`` is a hook inductor's own tests patch (torch 2.11-2.13).
    """
    try:
        from torch._inductor.graph import GraphLowering
    except ImportError:  # pragma: no cover
        yield
        return
    if not hasattr(GraphLowering, "save_output_code"):
        yield
        return
    previous = GraphLowering.save_output_code
    GraphLowering.save_output_code = staticmethod(codes.append)  # type: ignore[assignment, unused-ignore]
    try:
        yield
    finally:
        GraphLowering.save_output_code = previous  # type: ignore[method-assign, unused-ignore]


def cpu_capability() -> str:
    """The CPU ISA level inductor's C++ codegen targets (``torch.backends.cpu``)."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # pragma: no cover
        return "unknown"


def fallback_random() -> contextlib.AbstractContextManager[Any] | None:
    """Inductor's ``fallback_random`` on: random ops run as eager's aten kernels, drawing
    from eager's generator. ``torch._inductor.config`` is private (checked on torch 2.13);
    None where this torch lacks ``fallback_random``."""
    try:
        import torch._inductor.config as inductor_config
    except ImportError:  # pragma: no cover - inductor ships with every supported torch
        return None
    if not hasattr(inductor_config, "fallback_random"):
        return None
    return inductor_config.patch(fallback_random=True)
