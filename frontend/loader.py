"""Load and validate an ONNX model, fix its input shapes, and import it into a TVM Relax IRModule."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from edgebert.frontend.fp16 import widen_float16
from edgebert.frontend.metadata import EdgebertMetadata, metadata_props_of, parse_metadata
from edgebert.frontend.shape_folding import check_and_infer, fold_shapes
from edgebert.frontend.support import SUPPORTED_ONNX_OPS, check_domains, check_supported
from edgebert.isa.errors import CompileError

_ONNX_DTYPES = {1: "float32", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "float64", 2: "uint8"}
#: Oldest default-domain opset accepted (the newest is the installed onnx's `onnx_opset_version()`).
MIN_OPSET = 7


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """A graph input or output: name, static shape, dtype name (numpy spelling)."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclasses.dataclass
class LoadedModel:
    """A validated ONNX model with static input shapes, ready for `to_relax`."""

    model: Any  # onnx.ModelProto, weights loaded in memory
    path: Path | None
    seq_len: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: EdgebertMetadata
    opset: int
    sha256: str  # of the model file and its external data files, in that order
    source_dtype: str = "float32"  # "float16": an fp16 model, widened to float32 (frontend/fp16.py)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)


def load_onnx(
    path_or_model: str | Path | Any,
    seq_len: int | None = None,
    supported_ops: frozenset[str] = SUPPORTED_ONNX_OPS,
) -> LoadedModel:
    """Load (external data too), widen float16 to float32 (frontend/fp16.py), fix inputs to [1, seq_len], fold what
    that makes constant (shape arithmetic of dynamic axes), check, infer shapes and read EdgeBERT metadata
    (frontend/shape_folding.py: the fold, checker and shape inference run on the weight-free skeleton).

    Fails with one CompileError before any heavy work when the file is malformed or any node's op (after the fold)
    is not in `supported_ops` (the error lists every such node).
    """
    model, path, digest = _read_model(path_or_model)
    check_domains(model.graph)
    source_dtype = "float16" if widen_float16(model) else "float32"
    seq_len = _fix_input_shapes(model, seq_len)
    model = fold_shapes(model)
    check_supported(model.graph, supported_ops)
    model = check_and_infer(model)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    inputs = tuple(_spec(v) for v in _graph_inputs(model))
    outputs = tuple(_spec(v) for v in model.graph.output)
    metadata = parse_metadata(metadata_props_of(model), tuple(t.name for t in outputs))
    return LoadedModel(model, path, seq_len, inputs, outputs, metadata, opset, digest, source_dtype)


def _read_model(path_or_model) -> tuple[Any, Path | None, str]:
    """The ModelProto (external data loaded), its path, and the sha256 of its bytes."""
    import onnx
    from google.protobuf.message import DecodeError

    if isinstance(path_or_model, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(path_or_model)  # shape fixing edits the graph: leave the caller's model alone
        check_structure(model, "<model>")
        if _external_tensors(model):
            raise CompileError("<model>: initializers in external data need the model's file path (load by path)")
        return model, None, hashlib.sha256(path_or_model.SerializeToString()).hexdigest()
    path = Path(path_or_model)
    if not path.is_file():
        raise CompileError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as e:
        raise CompileError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})") from None
    check_structure(model, str(path))
    digest = hashlib.sha256(path.read_bytes())
    locations = sorted({_external_location(path, t) for t in _external_tensors(model)})
    for loc in locations:
        data = path.parent / loc
        if not data.is_file():
            raise CompileError(f"{path}: external data file {loc!r} not found beside the model")
        digest.update(data.read_bytes())
    if locations:
        try:
            onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
        except (OSError, ValueError, TypeError, onnx.checker.ValidationError) as e:
            raise CompileError(f"{path}: cannot read external data ({type(e).__name__}: {e})") from None
    return model, path, digest.hexdigest()


def _external_location(path: Path, tensor) -> str:
    """The tensor's external data file, checked to be a plain file inside the model's folder (never `..`, an
    absolute path or a symlink leading out: onnx would read any file), with a sane offset and length."""
    entries = {e.key: e.value for e in tensor.external_data}
    what = f"{path}: initializer {tensor.name!r:.80}"
    loc = entries.get("location")
    if not loc:
        raise CompileError(f"{what}: external data without a location")
    rel = PurePosixPath(loc.replace("\\", "/"))
    if rel.is_absolute() or PureWindowsPath(loc).is_absolute() or ".." in rel.parts or "\0" in loc:
        raise CompileError(f"{what}: external data location {loc!r:.120} lies outside the model's folder")
    folder = path.parent.resolve()
    target = (folder / rel).resolve()
    if not target.is_relative_to(folder):
        raise CompileError(f"{what}: external data location {loc!r:.120} leads outside the model's folder "
                           "(symlink)")
    for key in ("offset", "length"):
        if key in entries and not (entries[key].isdigit() and len(entries[key]) < 20):
            raise CompileError(f"{what}: external data {key} {entries[key]!r:.40} is not a byte count")
    if target.is_file():
        size = target.stat().st_size
        end = int(entries.get("offset", "0")) + int(entries.get("length", "0"))
        if end > size:
            raise CompileError(f"{what}: external data [{entries.get('offset', '0')}, {end}) runs past the end of "
                               f"{loc!r:.120} ({size} bytes)")
    return loc


def check_structure(model, source: str) -> None:
    """What must hold before anything reads the graph: a graph with outputs, an ai.onnx opset we can import,
    tensor-typed inputs and outputs with known element types and non-negative dims."""
    import onnx

    if not model.HasField("graph"):
        raise CompileError(f"{source}: the model has no graph")
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise CompileError(f"{source}: no ai.onnx opset import")
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= versions[0] <= newest:
        raise CompileError(f"{source}: opset {versions[0]} is not supported (opsets {MIN_OPSET}..{newest}, the "
                           f"newest the installed onnx {onnx.__version__} knows)")
    graph = model.graph
    if not graph.output:
        raise CompileError(f"{source}: the graph has no outputs")
    inits = {t.name for t in graph.initializer}
    for kind, values in (("input", [v for v in graph.input if v.name not in inits]), ("output", graph.output)):
        for v in values:
            what = f"{source}: graph {kind} {v.name!r:.80}"
            if not v.name:
                raise CompileError(f"{source}: a graph {kind} has no name")
            if v.type.WhichOneof("value") != "tensor_type":
                raise CompileError(f"{what} is not a tensor")
            t = v.type.tensor_type
            if t.elem_type not in _ONNX_DTYPES:
                raise CompileError(f"{what}: unsupported element type {t.elem_type}")
            for axis, dim in enumerate(t.shape.dim):
                if dim.HasField("dim_value") and dim.dim_value < 0:
                    raise CompileError(f"{what}: dimension {axis} is negative ({dim.dim_value})")


def _external_tensors(model) -> list:
    from onnx.external_data_helper import _get_all_tensors

    return [t for t in _get_all_tensors(model) if t.data_location == 1]  # TensorProto.EXTERNAL


def _graph_inputs(model) -> list:
    """Graph inputs that are real inputs (older exporters also list initializers as inputs)."""
    inits = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in inits]


def _fix_input_shapes(model, seq_len: int | None) -> int:
    """Set every input's batch dim to 1 and sequence dim to `seq_len`; return the sequence length used.

    Symbolic dims are rewritten; a fixed sequence dim that differs from `seq_len` is an error (the exporter
    baked it into reshape constants).
    """
    if seq_len is not None and seq_len < 1:
        raise CompileError(f"sequence length must be positive, got {seq_len}")
    fixed_lens = set()
    for value in _graph_inputs(model):
        dims = value.type.tensor_type.shape.dim
        if len(dims) >= 2 and dims[1].HasField("dim_value"):
            fixed_lens.add(dims[1].dim_value)
    if len(fixed_lens) > 1:
        raise CompileError(f"graph inputs disagree on the sequence length: {sorted(fixed_lens)}")
    if fixed_lens:
        baked = fixed_lens.pop()
        if seq_len is not None and seq_len != baked:
            raise CompileError(
                f"model was exported with fixed sequence length {baked}; cannot compile for {seq_len} "
                "(re-export with that length, or omit --seq-len)"
            )
        seq_len = baked
    if seq_len is None:
        raise CompileError("model inputs have a symbolic sequence length: give --seq-len")
    for value in _graph_inputs(model):
        dims = value.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            if dim.HasField("dim_value"):
                if axis == 0 and dim.dim_value != 1:
                    raise CompileError(f"input {value.name!r} has batch {dim.dim_value}; only batch 1 is supported")
                continue
            dim.Clear()
            dim.dim_value = 1 if axis == 0 else seq_len
    # Stale symbolic shapes on intermediate values would fight the new static ones: re-infer them.
    del model.graph.value_info[:]
    return seq_len


def _spec(value) -> TensorSpec:
    t = value.type.tensor_type
    shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
    return TensorSpec(value.name, shape, _ONNX_DTYPES.get(t.elem_type) or onnx_dtype_name(t.elem_type))


def onnx_dtype_name(elem_type: int) -> str:
    """numpy's name of an ONNX element type (`int8`, `float64`, ...), or `onnx_type_N` when it has none; the
    backend's check rejects dtypes it has no storage for by this name."""
    from onnx import helper

    try:
        return str(helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError, TypeError):
        return f"onnx_type_{elem_type}"


def to_relax(loaded: LoadedModel, keep_params_in_input: bool = False):
    """Import with `tvm.relax.frontend.onnx.from_onnx` (with frontend/converters.py's overrides: ConstantOfShape,
    Clip, Pad); returns a tvm.IRModule."""
    from tvm.relax.frontend.onnx import from_onnx

    from edgebert.frontend.converters import converter_overrides

    shape_dict = {t.name: list(t.shape) for t in loaded.inputs}
    dtype_dict = {t.name: t.dtype for t in loaded.inputs}
    try:
        with converter_overrides():
            return from_onnx(
                loaded.model, shape_dict=shape_dict, dtype_dict=dtype_dict, opset=loaded.opset,
                keep_params_in_input=keep_params_in_input,
            )
    except CompileError:
        raise
    except Exception as e:  # TVM raises TVMError/ValueError/OpNotImplemented with long C++ context
        first = str(e).strip().splitlines()
        raise CompileError(f"TVM ONNX import failed: {first[-1] if first else type(e).__name__}") from None


def constant_of_shape_fix():
    """Temporarily replace TVM 0.27's ConstantOfShape converter with one that folds constant shapes.

    TVM's `_impl_v9` builds `broadcast_to(const(value), shape)` with `value` the attribute's 1-element
    1-D array, which fails for a 0-D target shape ("broadcast_to expects ... ndim 1 ... ndim 0"); the
    legacy torch exporter emits exactly that for ALBERT's mask. When the shape is a compile-time constant
    (always, once input shapes are fixed) we emit `const(np.full(shape, scalar))` instead; otherwise we
    broadcast a 0-D scalar. The override is scoped to this context (the converter map is rebuilt per call).
    """
    from edgebert.frontend.converters import patched_converters

    return patched_converters({"ConstantOfShape": _folding_constant_of_shape})


@functools.cache
def _folding_constant_of_shape():
    """The converter class (built lazily: subclassing TVM's needs `import tvm`)."""
    import numpy as np
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import onnx_frontend

    class FoldingConstantOfShape(onnx_frontend.ConstantOfShape):
        """ConstantOfShape that folds constant shapes (see `constant_of_shape_fix`)."""

        @classmethod
        def _impl_v9(cls, bb, inputs, attr, params):
            shape = onnx_frontend.get_constant(inputs[0], params)
            value = attr.get("value")
            value = onnx_frontend.get_numpy(value) if value is not None else np.zeros(1, "float32")
            value = np.asarray(value)
            dtype = str(value.dtype)
            scalar = value.reshape(-1)[0]
            if isinstance(shape, tvm.ir.GenericConst):
                dims = [int(d) for d in shape.value.numpy().reshape(-1)]
                return relax.const(np.full(dims, scalar, dtype), dtype)
            if isinstance(shape, relax.ShapeExpr) and all(isinstance(d, tvm.tirx.IntImm) for d in shape.values):
                return relax.const(np.full([int(d) for d in shape.values], scalar, dtype), dtype)
            if not isinstance(shape, relax.ShapeExpr):
                shape = relax.op.tensor_to_shape(shape)
            return relax.op.broadcast_to(relax.const(scalar, dtype), shape)

    return FoldingConstantOfShape
