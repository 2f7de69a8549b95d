"""Overrides of TVM 0.27's ONNX converters, scoped to one `from_onnx` call (`converter_overrides()`).

* `ConstantOfShape`: loader.constant_of_shape_fix's folding converter (a 0-D target shape).
* `Clip`: TVM emits `call_tir` TE kernels (topi.maximum/minimum), opaque to every Relax pass and to the backend;
  the override emits `relax.maximum` / `relax.minimum` (a missing or NaN bound is no op, as ONNX says).
* `Pad` (constant mode): TVM emits a `call_tir` of topi.nn.pad; the override emits `relax.nn.pad` (the pads must be
  constants, which frontend/shape_folding.py makes them for MobileBERT's computed pads). Other modes stay TVM's.
* `Cast` of a float tensor to int32/int64: TVM emulates a wrap-around (`isfinite`, `floor_mod`, compares) that ONNX
  leaves undefined; the override emits one `astype` (the accelerator's `ftoi`: truncation, and a trap on NaN,
  infinity or a value outside int32 instead of a silent wrap).
"""

from __future__ import annotations

import contextlib
import functools


def converter_overrides():
    """Temporarily swap the converters above into TVM's converter map (a context manager)."""
    from edgebert.frontend.loader import _folding_constant_of_shape

    return patched_converters({"ConstantOfShape": _folding_constant_of_shape, "Clip": _relax_clip, "Pad": _relax_pad,
                               "Cast": _plain_float_to_int_cast})


@contextlib.contextmanager
def patched_converters(entries: dict):
    """TVM's ONNX converter map with `entries` (op type -> a function returning the converter class) swapped in for
    the duration (TVM rebuilds the map per `from_onnx` call, so nothing leaks)."""
    from tvm.relax.frontend.onnx import onnx_frontend

    original = onnx_frontend._get_convert_map

    def patched_map():
        table = original()
        table.update({op: make() for op, make in entries.items()})
        return table

    onnx_frontend._get_convert_map = patched_map
    try:
        yield
    finally:
        onnx_frontend._get_convert_map = original


def _scalar_bound(expr, params):
    """A constant one-element bound's value, None when absent or NaN, the expression when it is a run-time value."""
    import numpy as np
    import tvm
    from tvm.relax.frontend.onnx import onnx_frontend

    if expr is None:
        return None
    value = onnx_frontend.get_constant(expr, params)
    if isinstance(value, tvm.ir.GenericConst):
        array = value.value.numpy()
        if array.size == 1:
            scalar = float(array.reshape(-1)[0])
            return None if np.isnan(scalar) else scalar
    return value


@functools.cache
def _relax_clip():
    from tvm import relax
    from tvm.relax.frontend.onnx import onnx_frontend

    class RelaxClip(onnx_frontend.Clip):
        """Clip as relax.maximum / relax.minimum (module docstring)."""

        @classmethod
        def _clip(cls, bb, x, lo, hi):
            dtype = x.ty.dtype
            for op, bound, unbounded in ((relax.op.maximum, lo, float("-inf")), (relax.op.minimum, hi, float("inf"))):
                if bound is None or bound == unbounded:
                    continue
                operand = relax.const(bound, dtype) if isinstance(bound, float) else bound
                x = bb.emit(op(x, operand))
            return x

        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            return cls._clip(bb, inputs[0], float(attr.get("min", float("-inf"))), float(attr.get("max", float("inf"))))

        @classmethod
        def _impl_v13(cls, bb, inputs, attr, params):
            bounds = [_scalar_bound(inputs[i] if len(inputs) > i else None, params) for i in (1, 2)]
            return cls._clip(bb, inputs[0], *bounds)

        _impl_v11 = _impl_v13

    return RelaxClip


@functools.cache
def _relax_pad():
    from tvm import relax
    from tvm.relax.frontend.onnx import onnx_frontend

    class RelaxPad(onnx_frontend.Pad):
        """Constant-mode Pad as relax.nn.pad (module docstring)."""

        @classmethod
        def _emit(cls, inputs, before, after, value):
            widths = [w for pair in zip(before, after, strict=True) for w in (int(pair[0]), int(pair[1]))]
            return relax.op.nn.pad(inputs[0], widths, "constant", float(value))

        @classmethod
        def _impl_v2(cls, bb, inputs, attr, params):
            if attr.get("mode", b"constant").decode("utf-8") != "constant":
                return super()._impl_v2(bb, inputs, attr, params)
            pads = list(attr.get("pads"))
            half = len(pads) // 2
            return cls._emit(inputs, pads[:half], pads[half:], attr.get("value", 0.0))

        @classmethod
        def _lower_pad(cls, bb, inputs, attr, params, allowed_modes):
            if attr.get("mode", b"constant").decode("utf-8") != "constant":
                return super()._lower_pad(bb, inputs, attr, params, allowed_modes)
            before, after, value = cls._parse_pads_and_axes(inputs, params)
            return cls._emit(inputs, before, after, value)

    return RelaxPad


@functools.cache
def _plain_float_to_int_cast():
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import onnx_frontend

    class PlainCast(onnx_frontend.Cast):
        """Cast float -> int32/int64 as one astype (module docstring); every other cast as TVM's."""

        @classmethod
        def _impl_v13(cls, bb, inputs, attr, params):
            to_type = str(onnx_frontend.get_type(attr["to"]))
            src = inputs[0]
            src_dtype = str(getattr(getattr(src, "ty", None), "dtype", ""))
            if isinstance(src, relax.Expr) and not isinstance(src, tvm.ir.GenericConst | relax.ShapeExpr) and \
                    src_dtype.startswith(("float", "bfloat")) and to_type in ("int32", "int64"):
                return relax.op.astype(src, to_type)
            return super()._impl_v13(bb, inputs, attr, params)

    return PlainCast
