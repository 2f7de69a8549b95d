"""FoldConstantsNumpy: folds the exporters' shape/index arithmetic exactly as TVM's FoldConstant would."""

from __future__ import annotations

import numpy as np
import tvm
from relax_helpers import const, run_cpu, tensor_var
from tvm import relax

from edgebert.compiler.relax_passes.fold import FoldConstantsNumpy, FoldRemainingConstants


def _shape_arithmetic_module() -> tvm.IRModule:
    """x[:, idx] where idx is computed from shape_of(x) the way the dynamo/legacy exporters do it."""
    x = tensor_var("x", [1, 6, 4])
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            dims = bb.emit(relax.op.shape_to_tensor(bb.emit(relax.op.shape_of(x))))          # [1, 6, 4]
            seq = bb.emit(relax.op.take(dims, relax.const(1, "int64"), axis=0, mode="wrap"))  # 6 (0-d)
            neg = bb.emit(relax.op.less(relax.const(-2, "int64"), relax.const(0, "int64")))
            idx = bb.emit(relax.op.where(neg, bb.emit(relax.op.add(relax.const(-2, "int64"), seq)),
                                         relax.const(-2, "int64")))                            # 4 (0-d)
            head = bb.emit(relax.op.strided_slice(dims, [0], [0], [2]))                        # [1, 6]
            ok = bb.emit(relax.op.logical_and(const(np.array([True, False])), bb.emit(relax.op.astype(head, "bool"))))
            picked = bb.emit(relax.op.take(x, idx, axis=1))                                     # [1, 4]
            scaled = bb.emit(relax.op.multiply(picked, relax.const(2.0, "float32")))
            out = bb.emit_output(relax.Tuple([scaled, bb.emit(relax.op.astype(ok, "float32"))]))
        bb.emit_func_output(out)
    return bb.get()


def test_shape_arithmetic_is_folded_to_the_same_constants():
    mod = _shape_arithmetic_module()
    folded = FoldConstantsNumpy()(mod)
    ops = [b.value.op.name for b in folded["main"].body.blocks[0].bindings
           if isinstance(b.value, tvm.ir.Call) and isinstance(b.value.op, tvm.ir.Op)]
    assert ops == ["relax.take", "relax.multiply"]  # only the ops on the input x remain
    (take,) = [b.value for b in folded["main"].body.blocks[0].bindings
               if isinstance(b.value, tvm.ir.Call) and getattr(b.value.op, "name", "") == "relax.take"]
    index = take.args[1].value.numpy()
    assert index.shape == () and int(index) == 4  # 0-d stays 0-d
    x = np.arange(24, dtype=np.float32).reshape(1, 6, 4)
    got, want = run_cpu(folded, x), run_cpu(relax.transform.FoldConstant()(mod), x)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(got[0], 2 * x[:, 4])
    np.testing.assert_array_equal(got[1], [1.0, 0.0])


def test_inexact_float_ops_are_left_to_tvm():
    x = tensor_var("x", [2])
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            t = bb.emit(relax.op.tanh(const(np.array([0.5, 1.5], np.float32))))
            out = bb.emit_output(relax.op.add(x, t))
        bb.emit_func_output(out)
    mod = bb.get()
    folded = FoldConstantsNumpy()(mod)
    tvm.ir.assert_structural_equal(folded, mod)
    after = FoldRemainingConstants()(folded)
    assert not any(getattr(b.value.op, "name", "") == "relax.tanh" for b in after["main"].body.blocks[0].bindings)
    np.testing.assert_allclose(run_cpu(after, np.zeros(2, np.float32))[0], np.tanh([0.5, 1.5]), rtol=1e-6)
