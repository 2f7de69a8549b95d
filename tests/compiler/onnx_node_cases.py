"""ONNX's own node test cases (onnx.backend.test) run through edgebertc and the emulator."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from edgebert.isa.errors import CompileError
from edgebert.isa.hardware import load_config

RTOL, ATOL = 1e-3, 1e-7  # the ONNX backend test defaults


@dataclass
class Outcome:
    status: str  # "pass", "rejected" (CompileError at compile time), "internal" (a lowering bug), "wrong", "trap"
    detail: str = ""


#: Ops that only compute shapes in the node cases' expanded functions: folded away by the loader's shape fold.
SHAPE_OPS = frozenset({"Shape", "Size", "Range", "ConstantOfShape", "ReduceMin"})


@functools.cache
def supported_cases() -> tuple:
    """Node test cases all of whose ops are in SUPPORTED_ONNX_OPS (default domain only) once what their static shapes
    make constant is folded, as `load_onnx` does (frontend/shape_folding.py); those cases carry the folded model."""
    import copy

    from onnx.backend.test.case.node import collect_testcases

    from edgebert.frontend.shape_folding import fold_shapes, needs_fold
    from edgebert.frontend.support import SUPPORTED_ONNX_OPS

    out = []
    for case in collect_testcases(None):
        if case.kind != "node" or case.model is None or not case.data_sets:
            continue
        nodes = case.model.graph.node
        if not all(n.domain in ("", "ai.onnx") and n.op_type in SUPPORTED_ONNX_OPS | SHAPE_OPS for n in nodes):
            continue
        if needs_fold(case.model.graph):
            try:
                model = fold_shapes(copy.deepcopy(case.model))
            except Exception:  # a case onnxruntime itself refuses is not ours to run
                continue
            case = _with_model(case, model)
        if all(n.op_type in SUPPORTED_ONNX_OPS for n in case.model.graph.node):
            out.append(case)
    return tuple(sorted(out, key=lambda c: c.name))


def _with_model(case, model, data_sets=None):
    data_sets = case.data_sets if data_sets is None else data_sets
    if hasattr(case, "_replace"):
        return case._replace(model=model, data_sets=data_sets)
    return type(case)(**{**case.__dict__, "model": model, "data_sets": data_sets})


def strip_optional_outputs(case):
    """LayerNormalization cases also ask for the optional Mean/InvStdDev outputs, which edgebert does not
    produce: keep only Y (the models' first output) and its expected values."""
    import copy

    ops = op_types(case)
    if ops != {"LayerNormalization"} or len(case.model.graph.output) == 1:
        return case
    model = copy.deepcopy(case.model)
    del model.graph.output[1:]
    node = model.graph.node[0]
    del node.output[1:]
    data = [(inputs, list(outputs)[:1]) for inputs, outputs in case.data_sets]
    return _with_model(case, model, data)


def op_types(case) -> set[str]:
    return {n.op_type for n in case.model.graph.node}


#: The node cases check numerics, which no config changes; they run on the unbuffered machine because a few cases
#: (element-wise ops on 10,000-element tensors, e.g. test_mish_expanded) hold more whole tensors at once than
#: edgebert-cmod's 64 KiB buffers take, and the memory-hierarchy plan blocks only the encoder's op kinds.
NUMERICS_HW = load_config("ideal-256mac")


def compile_case(case):
    """Compile a node-test model as is (its static shapes; no batch/sequence fixing)."""
    from edgebert.compiler.pipeline import check_backend_limits, compile_relax, relax_pipeline
    from edgebert.frontend.loader import LoadedModel, _graph_inputs, _spec, to_relax
    from edgebert.frontend.metadata import parse_metadata
    from edgebert.frontend.support import check_supported

    model = case.model
    check_supported(model.graph)
    check_backend_limits(model)
    inputs = tuple(_spec(v) for v in _graph_inputs(model))
    outputs = tuple(_spec(v) for v in model.graph.output)
    for t in (*inputs, *outputs):
        if any(d < 0 for d in t.shape):
            raise CompileError(f"{t.name}: dynamic shape")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    loaded = LoadedModel(model, None, 0, inputs, outputs, parse_metadata({}, tuple(t.name for t in outputs)), opset, "")
    mod = to_relax(loaded)
    compiled = compile_relax(
        relax_pipeline(mod, None, {}), NUMERICS_HW, output_names=[t.name for t in outputs],
        output_shapes=[t.shape for t in outputs],
    )
    return compiled, loaded


def run_case(case) -> Outcome:
    from edgebert.emulator import run
    from edgebert.isa.errors import EdgebertError

    try:
        compiled, loaded = compile_case(case)
    except CompileError as exc:
        status = "internal" if "internal error" in str(exc) else "rejected"
        return Outcome(status, str(exc).splitlines()[0])
    for inputs, expected in case.data_sets:
        feed = dict(zip([t.name for t in loaded.inputs], inputs, strict=False))
        try:
            got = run(compiled.program, feed, NUMERICS_HW).outputs
        except EdgebertError as exc:
            return Outcome("trap", str(exc).splitlines()[0])
        for spec, want in zip(loaded.outputs, expected, strict=True):
            res = got.get(spec.name)
            if res is None or res.shape != np.asarray(want).shape:
                return Outcome("wrong", f"{spec.name}: shape {None if res is None else res.shape} != {np.shape(want)}")
            if not np.allclose(res, want, rtol=RTOL, atol=ATOL):
                err = float(np.max(np.abs(res.astype(np.float64) - want)))
                return Outcome("wrong", f"{spec.name}: max abs err {err:.3g}")
    return Outcome("pass")
