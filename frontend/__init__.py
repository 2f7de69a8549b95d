"""edgebert.frontend: everything up to a Relax IRModule, and the models that produce the ONNX.

`loader` (load and validate ONNX, fix input shapes, import with TVM's ONNX frontend), `support` (the ONNX ops the
compiler handles), `metadata` (EdgeBERT settings in `metadata_props`) and `predictor` (EdgeBERT's entropy
predictor: lookup table -> predicted exit layer). `edgebert.frontend.models` holds the PyTorch side: compressed and
multi-task ALBERT, their training, tasks and ONNX exporters. Importing this package or `loader` does not import
torch.
"""

from __future__ import annotations

from typing import Any

# Lazy re-exports: `import edgebert.frontend.models.*` must not pay for onnx/TVM imports.
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
