"""The ONNX operators edgebert accepts, and the up-front check that names every node we cannot compile."""

from __future__ import annotations

from collections.abc import Iterable

from edgebert.isa.errors import CompileError

#: Ops with a lowering (docs/compiler.md): as plain ops, inside a composite, or through a Relax canonicalisation.
LOWERED_ONNX_OPS = frozenset({
    # dense algebra (Gemm becomes matmul + add)
    "MatMul", "Gemm",
    # element-wise arithmetic and activations
    "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Neg", "Abs", "Exp", "Log", "Tanh", "Relu", "Sigmoid",
    "Erf", "Gelu", "Min", "Max", "Clip", "LeakyRelu", "PRelu", "HardSwish", "HardSigmoid", "Softplus", "Mish",
    # normalisation, attention and reductions over the last axis (ReduceMean: LayerNorm below opset 17)
    "LayerNormalization", "Softmax", "ReduceMax", "ReduceSum", "ReduceMean",
    # embedding lookup and gathers (run-time indices along axis 0; constant indices as views or copies)
    "Gather", "GatherElements", "GatherND",
    # layout (reshapes, transposes, slices and splits become address arithmetic or copies)
    "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Slice", "Split", "Pad", "Expand",
    "Concat",
    # comparisons, logic and selection (fp32 0/1 masks), casts, prefix sums (RoBERTa's position ids)
    "Cast", "Where", "Equal", "Not", "And", "Or", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "IsNaN",
    "CumSum",
})

#: Ops TVM imports as constants (a Constant node that no other folded node reads survives the fold).
CONSTANT_ONNX_OPS = frozenset({"Constant"})

#: Unsupported nodes named one by one in the error (the rest are counted).
MAX_LISTED = 50

#: Every ONNX op type `load_onnx` accepts after folding what the fixed input shapes make constant
#: (frontend/shape_folding.py): shape arithmetic (Shape, Range, ConstantOfShape, ...) is gone by then, and any that
#: survives is a real run-time op the backend cannot run. Anything else fails before import with one error listing
#: every node; what is accepted here and still cannot be lowered (an op variant, a dtype) is listed by the backend's
#: own check right after the Relax passes (compiler/lower/support.py), before any lowering.
SUPPORTED_ONNX_OPS = LOWERED_ONNX_OPS | CONSTANT_ONNX_OPS

#: Said when a graph holds onnxruntime's contrib ops: what to compile instead.
CONTRIB_HINT = ("this graph was optimised for onnxruntime (onnxruntime.transformers.optimizer / optimum's "
                "ORTOptimizer fuse into com.microsoft contrib ops); compile the model as torch.onnx.export wrote it, "
                "before onnxruntime fusion")


def unsupported_nodes(nodes: Iterable, supported: frozenset[str] = SUPPORTED_ONNX_OPS) -> list[tuple[str, str]]:
    """(name, op type) of every node whose op type (in the default domain) is not in `supported`."""
    bad = []
    for index, node in enumerate(nodes):
        domain_ok = node.domain in ("", "ai.onnx")
        if not domain_ok or node.op_type not in supported:
            op = node.op_type if domain_ok else f"{node.domain}::{node.op_type}"
            bad.append((node.name or f"<node #{index}>", op))
    return bad


def check_supported(graph, supported: frozenset[str] = SUPPORTED_ONNX_OPS) -> None:
    """Raise one CompileError naming every unsupported node of an ONNX graph (recursing into subgraphs)."""
    _raise_listing(unsupported_nodes(_all_nodes(graph), supported))


def check_domains(graph) -> None:
    """Raise one CompileError naming every node outside the default ONNX domain (onnxruntime's contrib ops say what
    to export instead): run before anything hands the graph to onnxruntime or TVM."""
    every = frozenset(n.op_type for n in _all_nodes(graph))
    _raise_listing(unsupported_nodes(_all_nodes(graph), every))


def _raise_listing(bad: list[tuple[str, str]]) -> None:
    if not bad:
        return
    listing = "; ".join(f"{name[:80]} ({op[:80]})" for name, op in bad[:MAX_LISTED])
    if len(bad) > MAX_LISTED:
        listing += f"; and {len(bad) - MAX_LISTED} more"
    kinds = ", ".join(sorted({op for _, op in bad}))
    hint = f" ({CONTRIB_HINT})" if any(op.startswith("com.microsoft::") for _, op in bad) else ""
    raise CompileError(f"{len(bad)} unsupported ONNX node(s) [op types: {kinds}]: {listing}{hint}")


def _all_nodes(graph) -> list:
    """Nodes of `graph` and of every subgraph attribute (If/Loop bodies), depth first."""
    nodes = []
    for node in graph.node:
        nodes.append(node)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                nodes.extend(_all_nodes(sub))
    return nodes
