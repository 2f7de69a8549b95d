"""float16 models computed in float32, the hardware's format (with AF8 for compressed weights).

Every float16 value is exactly a float32 value, so widening the graph (initializers, Constant / ConstantOfShape
tensors, `Cast(to=FLOAT16)`, graph inputs, outputs and value types) changes no input and no weight; the model then
computes with fp32 rounding instead of fp16 rounding, which is what it would do on the accelerator. The loader
records it (`LoadedModel.computed_in`), the program metadata says so, and `edgebertc` prints a note.
"""

from __future__ import annotations

from typing import Any

from edgebert.isa.errors import CompileError

FLOAT, FLOAT16 = 1, 10  # onnx.TensorProto.FLOAT, FLOAT16


def widen_float16(model: Any) -> bool:
    """Widen every float16 tensor, cast and type of `model` to float32, in place; whether there was any."""
    import numpy as np
    from onnx import AttributeProto, numpy_helper

    widened = False

    def widen(t) -> None:
        nonlocal widened
        if t.data_type == FLOAT16:
            try:
                data = numpy_helper.to_array(t)
            except (ValueError, TypeError) as exc:  # data that does not match its dims (a damaged file)
                raise CompileError(f"float16 tensor '{t.name}' (dims {list(t.dims)}): its data does not match its "
                                   f"shape ({exc})") from None
            t.CopyFrom(numpy_helper.from_array(data.astype(np.float32), t.name))
            widened = True

    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        for t in graph.initializer:
            widen(t)
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == AttributeProto.TENSOR:
                    widen(attr.t)
                elif attr.type == AttributeProto.GRAPH:
                    graphs.append(attr.g)
                elif attr.type == AttributeProto.GRAPHS:
                    graphs.extend(attr.graphs)
                elif attr.name in ("to", "dtype") and attr.type == AttributeProto.INT and attr.i == FLOAT16:
                    attr.i = FLOAT
                    widened = True
        for value in [*graph.input, *graph.output, *graph.value_info]:
            if value.type.tensor_type.elem_type == FLOAT16:
                value.type.tensor_type.elem_type = FLOAT
                widened = True
    return widened
