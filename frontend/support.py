"""The ONNX operators edgebert accepts, and the up-front check that names every node we cannot compile."""

from __future__ import annotations

from collections.abc import Iterable

from edgebert.isa.errors import CompileError

#: Ops that survive into the Relax module the backend lowers (after import, folding and fusion).
LOWERED_ONNX_OPS = frozenset({
    # dense algebra (Gemm becomes matmul + add)
    "MatMul", "Gemm",
    # element-wise arithmetic and activations
    "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Neg", "Abs", "Exp", "Tanh", "Relu", "Sigmoid",
    "Erf", "Gelu",
    # normalisation and attention (ReduceMax/Exp/Sub/ReduceSum/Div: the compressed model's span-masked softmax,
    # grouped as the composite edgebert.masked_softmax)
    "LayerNormalization", "Softmax", "ReduceMax", "ReduceSum",
    # embedding lookup
    "Gather",
    # layout (reshapes and transposes become address arithmetic or copies)
    "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Slice",
    # attention-mask arithmetic on the runtime mask input
    "Cast", "Where", "Equal", "Not", "And", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "IsNaN",
    "Expand", "Concat",
})

#: Ops the exporters emit only on compile-time constants (shapes, position ids); FoldConstant removes them.
FOLDED_ONNX_OPS = frozenset({
    "Constant", "ConstantOfShape", "Shape", "Range", "GatherElements", "GatherND", "ReduceMin", "CumSum",
})

#: Unsupported nodes named one by one in the error (the rest are counted).
MAX_LISTED = 50

#: Every ONNX op type `load_onnx` accepts; anything else fails before import with one error listing all nodes.
SUPPORTED_ONNX_OPS = LOWERED_ONNX_OPS | FOLDED_ONNX_OPS


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
    bad = unsupported_nodes(_all_nodes(graph), supported)
    if bad:
        listing = "; ".join(f"{name[:80]} ({op[:80]})" for name, op in bad[:MAX_LISTED])
        if len(bad) > MAX_LISTED:
            listing += f"; and {len(bad) - MAX_LISTED} more"
        kinds = ", ".join(sorted({op for _, op in bad}))
        raise CompileError(f"{len(bad)} unsupported ONNX node(s) [op types: {kinds}]: {listing}")


def _all_nodes(graph) -> list:
    """Nodes of `graph` and of every subgraph attribute (If/Loop bodies), depth first."""
    nodes = []
    for node in graph.node:
        nodes.append(node)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                nodes.extend(_all_nodes(sub))
    return nodes
