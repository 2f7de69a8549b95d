"""Minimal ONNX reproducers of the encoder zoo's former failure classes (docs/generality.md), a few nodes each.

    python scripts/generality_repros.py [--out DIR]     # build each, check it in onnxruntime, compile, compare

Every graph is what the exporters emit for one feature, cut down to its nodes: exact GELU through Erf, LayerNorm
decomposed below opset 17, a QA head's Split, MobileBERT's shifted-and-padded trigram, RoBERTa's position ids,
the shape arithmetic of dynamic axes (legacy Expand, dynamo Max), float16, an onnxruntime contrib op,
activations that had no lowering, and an op the up-front support check once accepted but the backend rejected.
Each is checked in onnxruntime first (so it is a valid graph), then compiled and emulated like any model: every one
matches now except the contrib op, which is rejected on purpose.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SEQ = 8
HIDDEN = 16


@dataclasses.dataclass(frozen=True)
class Repro:
    """One reproducer: its name, the failure class it showed, and a builder of (model, inputs)."""

    name: str
    failure_class: str  # the class it failed in before its fix (the contrib op: the class it is rejected in)
    build: Callable[[], tuple[Any, dict[str, np.ndarray]]]
    doc: str


def _model(nodes, inputs, outputs, inits=(), opset: int = 18, domains: dict[str, int] | None = None):
    from onnx import checker, helper

    graph = helper.make_graph(nodes, "repro", inputs, outputs, list(inits))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in (domains or {}).items()]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 9
    if not domains:
        checker.check_model(model, full_check=True)
    return model


def _t(name: str, elem: int, shape: list):
    from onnx import helper

    return helper.make_tensor_value_info(name, elem, shape)


def _c(name: str, value) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value), name)


def _x(seed: int = 0, shape=(1, SEQ, HIDDEN)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def erf_gelu():
    """Legacy exporter, opset <= 18: nn.GELU() as ((1 + erf(x / sqrt 2)) * x) * 0.5."""
    from onnx import TensorProto as T
    from onnx import helper as h

    nodes = [h.make_node("Div", ["x", "sqrt2"], ["d"]), h.make_node("Erf", ["d"], ["e"]),
             h.make_node("Add", ["e", "one"], ["a"]), h.make_node("Mul", ["x", "a"], ["m"]),
             h.make_node("Mul", ["m", "half"], ["y"])]
    inits = [_c("sqrt2", np.float32(np.sqrt(2))), _c("one", np.float32(1)), _c("half", np.float32(0.5))]
    return _model(nodes, [_t("x", T.FLOAT, [1, SEQ, HIDDEN])], [_t("y", T.FLOAT, [1, SEQ, HIDDEN])], inits), \
        {"x": _x()}


def layer_norm_opset14():
    """Legacy exporter, opset < 17: nn.LayerNorm as ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add."""
    from onnx import TensorProto as T
    from onnx import helper as h

    rng = np.random.default_rng(1)
    nodes = [h.make_node("ReduceMean", ["x"], ["mu"], axes=[-1]), h.make_node("Sub", ["x", "mu"], ["d"]),
             h.make_node("Pow", ["d", "two"], ["d2"]), h.make_node("ReduceMean", ["d2"], ["var"], axes=[-1]),
             h.make_node("Add", ["var", "eps"], ["ve"]), h.make_node("Sqrt", ["ve"], ["sd"]),
             h.make_node("Div", ["d", "sd"], ["n"]), h.make_node("Mul", ["n", "gamma"], ["g"]),
             h.make_node("Add", ["g", "beta"], ["y"])]
    inits = [_c("two", np.float32(2)), _c("eps", np.float32(1e-12)),
             _c("gamma", (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32)),
             _c("beta", (0.1 * rng.standard_normal(HIDDEN)).astype(np.float32))]
    return _model(nodes, [_t("x", T.FLOAT, [1, SEQ, HIDDEN])], [_t("y", T.FLOAT, [1, SEQ, HIDDEN])], inits,
                  opset=14), {"x": _x()}


def qa_split():
    """Question-answering heads: logits [1, S, 2] split into start and end along the last axis, squeezed."""
    from onnx import TensorProto as T
    from onnx import helper as h

    nodes = [h.make_node("Split", ["x", "sizes"], ["s", "e"], axis=-1),
             h.make_node("Squeeze", ["s", "axis"], ["start_logits"]), h.make_node("Squeeze", ["e", "axis"], ["end_logits"])]
    inits = [_c("sizes", np.array([1, 1], np.int64)), _c("axis", np.array([-1], np.int64))]
    outs = [_t("start_logits", T.FLOAT, [1, SEQ]), _t("end_logits", T.FLOAT, [1, SEQ])]
    return _model(nodes, [_t("x", T.FLOAT, [1, SEQ, 2])], outs, inits), {"x": _x(shape=(1, SEQ, 2))}


def trigram_pad():
    """MobileBERT's trigram embedding: [next token, token, previous token] by Slice + Pad along the sequence."""
    from onnx import TensorProto as T
    from onnx import helper as h

    nodes = [h.make_node("Slice", ["x", "one", "big", "axis1"], ["nxt"]),
             h.make_node("Pad", ["nxt", "pad_after"], ["nxt_p"]),
             h.make_node("Slice", ["x", "zero", "minus1", "axis1"], ["prv"]),
             h.make_node("Pad", ["prv", "pad_before"], ["prv_p"]),
             h.make_node("Concat", ["nxt_p", "x", "prv_p"], ["y"], axis=2)]
    inits = [_c("one", np.array([1], np.int64)), _c("big", np.array([2**62], np.int64)),
             _c("zero", np.array([0], np.int64)), _c("minus1", np.array([-1], np.int64)),
             _c("axis1", np.array([1], np.int64)),
             _c("pad_after", np.array([0, 0, 0, 0, 1, 0], np.int64)),
             _c("pad_before", np.array([0, 1, 0, 0, 0, 0], np.int64))]
    return _model(nodes, [_t("x", T.FLOAT, [1, SEQ, HIDDEN])], [_t("y", T.FLOAT, [1, SEQ, 3 * HIDDEN])], inits), \
        {"x": _x()}


def position_ids():
    """RoBERTa: position ids from the token ids at run time, cumsum(ids != pad) * (ids != pad) + pad."""
    from onnx import TensorProto as T
    from onnx import helper as h

    pad, positions = 1, 2 * SEQ + 2
    nodes = [h.make_node("Equal", ["input_ids", "pad"], ["is_pad"]), h.make_node("Not", ["is_pad"], ["tok"]),
             h.make_node("Cast", ["tok"], ["tok_i"], to=T.INT32), h.make_node("CumSum", ["tok_i", "axis"], ["cs"]),
             h.make_node("Mul", ["cs", "tok_i"], ["cm"]), h.make_node("Cast", ["cm"], ["cm64"], to=T.INT64),
             h.make_node("Add", ["cm64", "pad"], ["pos"]), h.make_node("Gather", ["table", "pos"], ["y"])]
    table = np.random.default_rng(2).standard_normal((positions, HIDDEN)).astype(np.float32)
    inits = [_c("pad", np.array(pad, np.int64)), _c("axis", np.array(1, np.int32)), _c("table", table)]
    ids = np.array([[0, 5, 9, pad, 7, 3, pad, pad]], np.int64)  # a pad id mid-sentence moves the positions after it
    return _model(nodes, [_t("input_ids", T.INT64, [1, SEQ])], [_t("y", T.FLOAT, [1, SEQ, HIDDEN])], inits), \
        {"input_ids": ids}


def dynamic_expand():
    """Legacy exporter, dynamic axes: a [S] Range from Shape(input) expanded to a shape built from Shape(input).

    TVM's importer gives the Range a fresh symbolic length, then Expand compares it with the target in Python."""
    from onnx import TensorProto as T
    from onnx import helper as h

    nodes = [h.make_node("Shape", ["x"], ["shape"]), h.make_node("Gather", ["shape", "i1"], ["n"]),
             h.make_node("Range", ["zero", "n", "step"], ["r"]), h.make_node("Unsqueeze", ["r", "ax0"], ["r2"]),
             h.make_node("Expand", ["r2", "shape"], ["e"]), h.make_node("Cast", ["e"], ["ef"], to=T.FLOAT),
             h.make_node("Add", ["x", "ef"], ["y"])]
    inits = [_c("i1", np.array(1, np.int64)), _c("zero", np.array(0, np.int64)), _c("step", np.array(1, np.int64)),
             _c("ax0", np.array([0], np.int64))]
    return _model(nodes, [_t("x", T.FLOAT, ["batch", "sequence"])], [_t("y", T.FLOAT, ["batch", "sequence"])],
                  inits), {"x": _x(shape=(1, SEQ))}


def dynamic_max():
    """Dynamo exporter, dynamic axes: broadcast shapes as Max(Shape(a), Shape(b)) feeding an Expand."""
    from onnx import TensorProto as T
    from onnx import helper as h

    nodes = [h.make_node("Shape", ["x"], ["sx"]), h.make_node("Max", ["sx", "ones"], ["s"]),
             h.make_node("Expand", ["bias", "s"], ["b"]), h.make_node("Add", ["x", "b"], ["y"])]
    inits = [_c("ones", np.array([1, 1], np.int64)), _c("bias", np.float32(0.5))]
    return _model(nodes, [_t("x", T.FLOAT, ["batch", "sequence"])], [_t("y", T.FLOAT, ["batch", "sequence"])],
                  inits), {"x": _x(shape=(1, SEQ))}


def float16():
    """A float16 export: fp16 input, weights and output."""
    from onnx import TensorProto as T
    from onnx import helper as h

    w = (np.random.default_rng(3).standard_normal((HIDDEN, HIDDEN)) / 4).astype(np.float16)
    nodes = [h.make_node("MatMul", ["x", "w"], ["y"])]
    return _model(nodes, [_t("x", T.FLOAT16, [1, SEQ, HIDDEN])], [_t("y", T.FLOAT16, [1, SEQ, HIDDEN])],
                  [_c("w", w)]), {"x": _x().astype(np.float16)}


def contrib_fast_gelu():
    """onnxruntime.transformers.optimizer output: com.microsoft::FastGelu (and SkipLayerNormalization, ...)."""
    from onnx import TensorProto as T
    from onnx import helper as h

    nodes = [h.make_node("FastGelu", ["x"], ["y"], domain="com.microsoft")]
    return _model(nodes, [_t("x", T.FLOAT, [1, SEQ, HIDDEN])], [_t("y", T.FLOAT, [1, SEQ, HIDDEN])],
                  domains={"com.microsoft": 1}), {"x": _x()}


def _elementwise(op: str, extra_inputs: dict[str, np.ndarray] | None = None, positive: bool = False, **attrs):
    def build():
        from onnx import TensorProto as T
        from onnx import helper as h

        extra = extra_inputs or {}
        nodes = [h.make_node(op, ["x", *extra], ["y"], **attrs)]
        inits = [_c(k, v) for k, v in extra.items()]
        x = np.abs(_x()) if positive else _x() + 0.5  # clips and slopes see both signs
        return _model(nodes, [_t("x", T.FLOAT, [1, SEQ, HIDDEN])], [_t("y", T.FLOAT, [1, SEQ, HIDDEN])], inits), \
            {"x": x}
    return build


REPROS: tuple[Repro, ...] = (
    Repro("erf_gelu", "erf-gelu", erf_gelu, erf_gelu.__doc__),
    Repro("layer_norm_opset14", "reduce-mean-layernorm", layer_norm_opset14, layer_norm_opset14.__doc__),
    Repro("qa_split", "split", qa_split, qa_split.__doc__),
    Repro("trigram_pad", "pad", trigram_pad, trigram_pad.__doc__),
    Repro("position_ids", "position-ids", position_ids, position_ids.__doc__),
    Repro("dynamic_expand", "dynamic-expand", dynamic_expand, dynamic_expand.__doc__),
    Repro("dynamic_max", "dynamic-shape-ops", dynamic_max, dynamic_max.__doc__),
    Repro("float16", "fp16", float16, float16.__doc__),
    Repro("contrib_fast_gelu", "contrib-ops", contrib_fast_gelu, contrib_fast_gelu.__doc__),
    Repro("leaky_relu", "activation-ops", _elementwise("LeakyRelu", alpha=0.1), "ACT2FN leaky_relu"),
    Repro("clip", "activation-ops", _elementwise("Clip", {"lo": np.float32(-1), "hi": np.float32(1)}),
          "ACT2FN relu6 / gelu_10 (Clip with min and max inputs)"),
    Repro("hard_swish", "activation-ops", _elementwise("HardSwish"), "ACT2FN hardswish"),
    Repro("softplus", "activation-ops", _elementwise("Softplus"), "ACT2FN mish, sqrtsoftplus (needs log)"),
    Repro("sqrt", "unsupported-op", _elementwise("Sqrt", positive=True),
          "accepted up front (LOWERED_ONNX_OPS), rejected later"),
)


def check(repro: Repro, out_dir: Path | None = None) -> tuple[str, str]:
    """(failure class or "pass", one-line error) of one reproducer, after checking it in onnxruntime."""
    import encoder_matrix as matrix

    from edgebert.compiler.pipeline import compile_onnx
    from edgebert.emulator import run

    model, inputs = repro.build()
    if out_dir is not None:
        import onnx

        out_dir.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(out_dir / f"{repro.name}.onnx"))
        np.savez(out_dir / f"{repro.name}.npz", **inputs)
    want = matrix.onnxruntime_outputs(model, inputs)  # raises if the graph is not valid ONNX
    if repro.failure_class == "fp16":  # the hardware computes fp16 models in fp32: compare with that
        inputs = {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in inputs.items()}
        want = matrix.onnxruntime_outputs(matrix.fp32_reference(model), inputs)
    dynamic = any(not d.HasField("dim_value") for v in model.graph.input for d in v.type.tensor_type.shape.dim)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            compiled = compile_onnx(model, SEQ if dynamic else None)
        got = run(compiled.program, inputs).outputs
        err = max(matrix.compare(got, want).values())
    except Exception as e:  # the point is to see the error
        return matrix.classify("compile", matrix.one_line(e), dynamic), matrix.one_line(e)
    return ("pass", "") if err <= matrix.TOL else ("mismatch", f"max abs error {err:.3g}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="generality_repros", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="also write each reproducer's .onnx and .npz here")
    args = p.parse_args(argv)
    for repro in REPROS:
        got, error = check(repro, args.out)
        print(f"{repro.name:20s} {got:22s} (was {repro.failure_class}) {error[:150]}")
    return 0


sys.path.insert(0, str(Path(__file__).resolve().parent))  # encoder_matrix, a sibling script

if __name__ == "__main__":
    sys.exit(main())
