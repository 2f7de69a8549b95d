"""Matrix products of lowered values: numpy matmul semantics (batches, 1-D operands, broadcasting) over tile matmuls,
constant weights compressed or staged, AF8 activations quantized at their calibrated points."""

from __future__ import annotations

import numpy as np

from edgebert.compiler import emitters as em
from edgebert.compiler.lower.core import Const, Lowerer, Out, Tensor, Value
from edgebert.compiler.matmul import emit_matmul, in_place_bias
from edgebert.compiler.tile_ir import Buffer
from edgebert.compiler.views import View, fresh_view
from edgebert.isa.errors import CompileError


def matmul_shape(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of a @ b (numpy rules: a 1-D a is a row, a 1-D b a column, and those dims are dropped)."""
    a2 = a_shape if len(a_shape) > 1 else (1, *a_shape)
    b2 = b_shape if len(b_shape) > 1 else (*b_shape, 1)
    shape = (*np.broadcast_shapes(a2[:-2], b2[:-2]), a2[-2], b2[-1])
    if len(a_shape) == 1:
        shape = shape[:-2] + shape[-1:]
    if len(b_shape) == 1:
        shape = shape[:-1]
    return tuple(int(d) for d in shape)


def lower_matmul(low: Lowerer, out: Out, a: Value, b: Value, bias: np.ndarray | None = None) -> Tensor:
    """out = a @ b (+ `bias`, a row of N elements the matmul adds: `has_bias`); numpy matmul semantics.

    A constant b is a weight: stored compressed (AF8 / bitmask-sparse) when the compression options say so, with
    the activation entering it quantized to AF8 at its calibrated point; an activation b (attention) has both
    operands quantized when the model calibrated its attention."""
    name, out_shape = out.dest.name, out.dest.shape
    if isinstance(a, Const):
        a = low.to_sram(a, f"{name}.a")
    a_view = a.view if len(a.shape) > 1 else a.view.reshape((1, a.shape[0]))
    b_shape = b.array.shape if isinstance(b, Const) else b.shape
    squeeze_n = len(b_shape) == 1
    bias_view = None
    if bias is not None:
        n = b_shape[-1]
        # a multi-task task weight's bias is read in place like the weight
        bias_view = in_place_bias(low.prog, low.compression, b.array, bias.reshape(n)) if isinstance(b, Const) else None
        bias_view = bias_view or low.to_sram(Const(bias.reshape(n), "float32"), f"{name}.bias").view
    dst = out.tensor(low)
    if dst.view.strides and dst.view.strides[-1] != 1 and out_shape[-1] > 1:
        dst = low.new_tensor(name, out_shape, "float32")
    # 1-D operands: a [K] is a row [1, K], b [K] a column [K, 1]; the output drops those dims again
    packed = None
    if isinstance(b, Const):
        barr = b.array if not squeeze_n else b.array.reshape(-1, 1)
        packed = low.packed_weight(barr)
        if packed is None:
            b_view = low.const_buffer(barr, "float32")
        else:  # stored as encoded tiles (PackedWeight.const); this unplanned buffer only carries the shape
            b_view = fresh_view(Buffer("packed", barr.size * 4, "const", "envm"), barr.shape, "f32")
    else:
        b_view = b.view if not squeeze_n else b.view.reshape((b.shape[0], 1))
    batch = tuple(np.broadcast_shapes(a_view.shape[:-2], b_view.shape[:-2]))
    full_out = batch + (a_view.shape[-2], b_view.shape[-1])
    o_view = dst.view.reshape(full_out)
    a_b = a_view.broadcast_to(batch + a_view.shape[-2:])
    b_b = b_view.broadcast_to(batch + b_view.shape[-2:])
    # fold the batch of a constant-weight matmul into rows when a's batch and rows are contiguous
    if batch and len(b_view.shape) == 2:
        m_all = int(np.prod(batch)) * a_b.shape[-2]
        fa = a_b.reshape((m_all, a_b.shape[-1]))
        fo = o_view.reshape((m_all, o_view.shape[-1]))
        if fa is not None and fo is not None:
            a_b, o_view, b_b, batch = fa, fo, b_view, ()
    if a_b.strides[-1] != 1 and a_b.shape[-1] > 1:
        a_b = low.dense_copy(Tensor(a_b, "float32"), f"{name}.a").view
    a_exp = None
    if isinstance(b, Const) and low.compression is not None and barr.ndim == 2:
        a_exp = low.compression.activation_bias(barr, low.loop_depth > 0)
    if a_exp is not None:  # AF8 activation at this weight matmul's input (metadata point bias)
        if batch:
            raise CompileError(f"binding '{name}': AF8 activations of a batched matmul are not supported")
        a_b = quantize_view(low, a_b, a_exp, f"{name}.a_af8")
    b_exp = None
    if not isinstance(b, Const) and low.compression is not None:  # activation x activation: the attention's
        biases = low.compression.attention_biases(low.loop_depth > 0)
        if biases is not None:
            a_exp, b_exp = biases
            a_b = quantize_view(low, a_b, a_exp, f"{name}.a_af8")
            b_b = quantize_view(low, b_b, b_exp, f"{name}.b_af8")
    low.notes.setdefault("matmuls", []).append({"weight": barr if isinstance(b, Const) else None,
                                                "fmt": packed.fmt if packed is not None else None,
                                                "a_exp": a_exp, "b_exp": b_exp, "batch": batch})
    for idx in np.ndindex(*batch) if batch else [()]:
        av, bv, ov = a_b, b_b, o_view
        for i in idx:
            av, bv, ov = (_drop_leading(v.index(0, i, 1)) for v in (av, bv, ov))
        if bv.buffer.kind != "const" and bv.strides[0] != 1 and bv.strides[1] != 1:
            bv = low.dense_copy(Tensor(bv, "float32"), f"{name}.b").view
        pk = packed if packed is not None and bv.buffer is b_view.buffer and bv.shape == packed.values.shape else None
        emit_matmul(low.prog, low.hw, low.ring, ov, av, bv, bias_view, name, pk, a_exp, b_exp)
    return dst


def _drop_leading(v: View) -> View:
    return View(v.buffer, v.offset, v.shape[1:], v.strides[1:], v.dtype)


def quantize_view(low: Lowerer, view: View, exp_bias: int, name: str) -> View:
    """`quant` an fp32 activation view into fresh AF8 codes (same shape; dense, or dense in the transposed order
    when the view is transposed, e.g. K^T), returned as a view of the codes."""
    if view.shape and view.strides[-1] != 1 and view.shape[-1] > 1 and len(view.shape) >= 2:
        order = (*range(len(view.shape) - 2), len(view.shape) - 1, len(view.shape) - 2)
        return quantize_view(low, view.permute(order), exp_bias, name).permute(order)
    codes = low.prog.buffer(low.buffer_name(name), max(1, int(np.prod(view.shape))), "act")
    dst = fresh_view(codes, view.shape, "af8")
    em.emit_unary(low.prog, "quant", dst, view, exp_bias=exp_bias)
    return dst
