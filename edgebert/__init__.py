"""edgebert: compile ONNX encoders for an EdgeBERT-style accelerator, emulate them, bench and sweep them.

The public Python API (`edgebert.api`; the command-line tools are thin wrappers over it)::

    import edgebert as eb

    program = eb.compile("out/albert.onnx", hw="ideal-256mac")        # -> Program
    eb.save(program, "out/albert.ebin")                                # .ebin, or .s for assembly
    result = eb.emulate(program, "out/in.npz")                         # -> Result: outputs, report, trace
    print(result.report.summary())                                     # 20,450 cycles, 25.56 µs, 2.898 µJ ...
    result.report.plot("out/energy.pdf")                               # energy per component, op class, layer
    bench = eb.bench(program, entropies=trace, latency_target="50ms")  # -> BenchResult (EdgeBERT's modes)
    bench.plot("out/bench.svg")

Importing this package is cheap: TVM, torch and Ray load only when a function that needs them runs.
"""

from __future__ import annotations

from typing import Any

#: The installed distribution's version (`edgebert-* --version` prints the same).
__version__: str


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edgebert")
    except PackageNotFoundError:
        return "unknown"


__version__ = _version()

_API = ("compile", "emulate", "load", "save", "hardware", "bench", "policy_sweep", "sweep", "plot_energy",
        "plot_bench", "plot_policy_sweep", "progress_bars", "read_entropies", "Program", "HardwareConfig", "Result",
        "Report", "BenchResult", "PolicySweepResult", "SweepSummary", "EdgebertError", "EdgebertWarning")
__all__ = [*_API, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        from edgebert import api

        return getattr(api, name)
    raise AttributeError(f"module 'edgebert' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
