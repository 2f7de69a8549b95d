"""edgebert.frontend: ONNX loading into TVM Relax, and the PyTorch side producing compressed ALBERT."""

from __future__ import annotations

from typing import Any

# Lazy re-exports: `import edgebert.frontend.torch_*` must not pay for onnx/TVM imports.
_EXPORTS = {
    "load_onnx": "loader", "to_relax": "loader", "LoadedModel": "loader", "TensorSpec": "loader",
    "constant_of_shape_fix": "loader",
    "EdgebertMetadata": "metadata", "parse_metadata": "metadata",
    "SUPPORTED_ONNX_OPS": "support", "check_supported": "support",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
