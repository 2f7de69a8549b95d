"""Fold what fixed input shapes make constant, and check a model, on its weight-free skeleton.

Once batch and sequence are fixed, the shape arithmetic of a dynamic export (Shape, Gather, Range, Max, Where,
ConstantOfShape, Expand targets, MobileBERT's computed pads, ...) is fully determined, but TVM's importer only
folds what its converters happen to see as constants. `fold_shapes` evaluates it on the ONNX side with
onnxruntime's basic graph optimisations (constant folding, redundant-node elimination; the structural fusions are
disabled so the graph keeps the exporter's ops, all in the ai.onnx domain).

Both the fold and `check_and_infer` (onnx's checker and shape inference) run on a *skeleton*: the model with every
float initializer of more than one element declared as a graph input instead (a 440 MB BERT-base becomes a few
hundred KB), so no weight is serialised, folded or re-checked; the weights are put back by name afterwards.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from edgebert.isa.errors import CompileError

#: onnxruntime level-1 optimisers that restructure the graph rather than fold it (MatMul + Add -> Gemm with
#: reshapes, Div/Mul reassociation, Relu + Clip, transposes into Gemm, Not + Where): left off, so the folded graph
#: has the exporter's ops and the Relax patterns still match.
DISABLED_OPTIMIZERS = ("MatMulAddFusion", "GemmTransposeFusion", "DivMulFusion", "FuseReluClip", "NotWhereFusion")

#: Ops whose result is constant once the input shapes are static, whatever their inputs hold.
_SHAPE_OPS = frozenset({"Shape", "Size"})
_FLOAT_TYPES = frozenset({1, 10, 11, 16})  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


def _moves_out(tensor) -> bool:
    """Whether an initializer leaves the skeleton: float data of more than one element (the weights)."""
    n = 1
    for d in tensor.dims:
        n *= d
    return tensor.data_type in _FLOAT_TYPES and n > 1


def skeleton(model: Any) -> tuple[Any, list[str]]:
    """A copy of `model` without its weights (float initializers of > 1 element become graph inputs of the same
    type and shape) and the names moved out. Only the graph structure is copied, never the weight data."""
    import onnx
    from onnx import helper

    skel = onnx.ModelProto()
    for desc, value in model.ListFields():
        if desc.name != "graph":
            _assign(skel, desc, value)
    graph = model.graph
    for desc, value in graph.ListFields():
        if desc.name != "initializer":
            _assign(skel.graph, desc, value)
    moved = []
    declared = {v.name for v in graph.input}  # IR < 4 exporters also list initializers as inputs
    for t in graph.initializer:
        if _moves_out(t):
            moved.append(t.name)
            if t.name not in declared:
                skel.graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        else:
            skel.graph.initializer.append(t)
    return skel, moved


def _assign(msg, desc, value) -> None:
    if desc.is_repeated:
        getattr(msg, desc.name).extend(value)
    elif desc.message_type is not None:
        getattr(msg, desc.name).CopyFrom(value)
    else:
        setattr(msg, desc.name, value)


def needs_fold(graph: Any) -> bool:
    """Whether some node computes a constant: all its inputs are constants (initializers, Constant outputs, outputs
    of such nodes) or it only reads a static shape (Shape, Size)."""
    const = {t.name for t in graph.initializer} | {""}
    for node in graph.node:
        if node.op_type == "Constant" and not node.input:
            const.update(node.output)
            continue
        if node.op_type in _SHAPE_OPS or all(i in const for i in node.input):
            return True
    return False


def fold_shapes(model: Any) -> Any:
    """`model` (input shapes fixed) with everything static shapes make constant folded by onnxruntime, in place:
    the nodes and small initializers are replaced, the weights (by name), inputs, outputs, opsets and metadata kept.
    A model with nothing to fold is returned as it is."""
    if not needs_fold(model.graph):
        return model
    import onnx
    import onnxruntime as ort

    skel, moved = skeleton(model)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory(prefix="edgebert-fold.") as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "folded.onnx")
        try:
            ort.InferenceSession(skel.SerializeToString(), options, providers=["CPUExecutionProvider"],
                                 disabled_optimizers=list(DISABLED_OPTIMIZERS))
        except Exception as e:  # onnxruntime raises Fail/InvalidGraph/RuntimeException with long messages
            first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise CompileError(f"onnxruntime refuses the graph (an invalid export?): {first[:300]}") from None
        folded = onnx.load(options.optimized_model_filepath)
    keep = set(moved)
    graph = model.graph
    nodes = _in_original_order(folded.graph, {n.name: i for i, n in enumerate(graph.node) if n.name})
    graph.ClearField("node")
    graph.node.extend(nodes)
    small = [t for t in folded.graph.initializer if t.name not in keep]
    # keep the weight tensors where they are (no copy of their data): drop every other initializer, add the folded
    for i in range(len(graph.initializer) - 1, -1, -1):
        if graph.initializer[i].name not in keep:
            del graph.initializer[i]
    graph.initializer.extend(small)
    graph.ClearField("value_info")
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    for i in range(len(graph.initializer) - 1, -1, -1):  # weights the fold made unused
        if graph.initializer[i].name not in used:
            del graph.initializer[i]
    return model


def _in_original_order(graph: Any, position: dict[str, int]) -> list:
    """The folded graph's nodes in the exporter's order as far as dependencies allow (onnxruntime re-sorts them; the
    layer-loop pass relies on each layer's bindings being where the exporter put them): a topological sort that
    always takes the ready node which came first in the original graph (new nodes: right after their inputs)."""
    import heapq

    producer = {o: i for i, n in enumerate(graph.node) for o in n.output}
    deps = [{producer[x] for x in n.input if x in producer} for n in graph.node]
    users: list[list[int]] = [[] for _ in graph.node]
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    waiting = [len(d) for d in deps]
    key = [float(position.get(n.name, -1)) for n in graph.node]
    ready = [(key[i], i) for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        k, i = heapq.heappop(ready)
        order.append(graph.node[i])
        for u in users[i]:
            if position.get(graph.node[u].name) is None:  # a node the fold made: right after its last input
                key[u] = max(key[u], k)
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, (key[u], u))
    return order


def check_and_infer(model: Any) -> Any:
    """onnx's checker and strict shape inference (with data propagation) on the skeleton; the inferred value types
    and output shapes are copied into `model`. Each weight's data size is checked against its shape here instead."""
    import onnx

    _check_weight_sizes(model.graph)
    skel, _ = skeleton(model)
    try:
        onnx.checker.check_model(skel)
    except (onnx.checker.ValidationError, ValueError, RuntimeError, TypeError) as e:
        first = str(e).strip().splitlines()
        raise CompileError(f"invalid ONNX model: {first[0] if first else type(e).__name__}") from None
    try:
        inferred = onnx.shape_inference.infer_shapes(skel, check_type=True, strict_mode=True, data_prop=True)
    except Exception as e:  # onnx raises InferenceError or plain RuntimeError depending on the failure
        raise CompileError(f"ONNX shape inference failed: {str(e).strip().splitlines()[0]}") from None
    graph = model.graph
    graph.ClearField("value_info")
    graph.value_info.extend(inferred.graph.value_info)
    graph.ClearField("output")
    graph.output.extend(inferred.graph.output)
    return model


_ITEMSIZE = {1: 4, 10: 2, 11: 8, 16: 2}


def _check_weight_sizes(graph: Any) -> None:
    """A weight left out of the checker must still hold exactly as many elements as its shape says."""
    for t in graph.initializer:
        if not _moves_out(t) or t.data_location == 1:  # external data was loaded into raw_data by the reader
            continue
        n = 1
        for d in t.dims:
            n *= d
        if t.raw_data:
            have = len(t.raw_data) // _ITEMSIZE[t.data_type]
        else:
            have = len(t.float_data) or len(t.int32_data) or len(t.double_data)
        if have != n:
            raise CompileError(f"invalid ONNX model: initializer {t.name!r:.80} holds {have} elements, its shape "
                               f"{list(t.dims)} says {n}")
